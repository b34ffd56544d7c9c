import { fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";

import type { ModelInfo } from "@/api/client";
import { DEFAULT_PARAMS, type FormParams } from "@/lib/params";
import type { FieldErrors } from "@/lib/rules";

import { firstInvalidControl, GenerateForm } from "./GenerateForm";

const models: ModelInfo[] = [
  { id: "tiny-sd15", name: "Tiny SD 1.5", family: "sd15", format: "diffusers", demo: true, loaded: true, inpainting: false, default_size: 64, kind: "checkpoint" },
  { id: "xl", name: "Big XL", family: "sdxl", format: "single-file", demo: false, loaded: false, inpainting: false, default_size: 1024, kind: "checkpoint" },
];

function Harness({ errors = {}, onSubmit = () => {}, initial = DEFAULT_PARAMS }: { errors?: FieldErrors; onSubmit?: () => void; initial?: FormParams }) {
  const [params, setParams] = useState(initial);
  return (
    <>
      <GenerateForm
        params={params}
        onChange={setParams}
        onSubmit={onSubmit}
        models={models}
        defaultModel="tiny-sd15"
        samplers={[{ id: "euler_a", name: "Euler a" }, { id: "ddim", name: "DDIM" }]}
        errors={errors}
        submitting={false}
        lastSeed={null}
      />
      <output data-testid="state">{JSON.stringify(params)}</output>
    </>
  );
}

const state = () => JSON.parse(screen.getByTestId("state").textContent ?? "{}") as FormParams;

describe("GenerateForm", () => {
  it("shows an error next to the field it names, linked for screen readers", () => {
    render(<Harness errors={{ width: "must be a multiple of 8" }} />);
    const width = screen.getByLabelText("Width");
    expect(width).toHaveAttribute("aria-invalid", "true");
    expect(width).toHaveAccessibleDescription("Width: must be a multiple of 8");
    expect(screen.getByLabelText("Height")).not.toHaveAttribute("aria-invalid");
  });

  it("links every hint to the control it explains", () => {
    const { container } = render(<Harness initial={{ ...DEFAULT_PARAMS, seedMode: "fixed" }} />);
    const hints = Array.from(container.querySelectorAll<HTMLElement>(".hint"));
    expect(hints.length).toBeGreaterThanOrEqual(2);
    for (const hint of hints) {
      const control = container.querySelector(`[aria-describedby~="${hint.id}"]`);
      expect(control, `hint "${hint.textContent}" is linked to no control`).not.toBeNull();
      expect(control).toHaveAccessibleDescription(hint.textContent ?? "");
    }
    expect(screen.getByLabelText("Priority")).toHaveAccessibleDescription("Higher runs first");
  });

  it("puts the keyboard on the first field in error, in page order", () => {
    expect(firstInvalidControl({ steps: "x", width: "y" }, "random")).toBe("width");
    expect(firstInvalidControl({ priority: "x", prompt: "y" }, "random")).toBe("prompt");
    // Without a seed value field, a seed error belongs to the seed mode.
    expect(firstInvalidControl({ seed: "x" }, "last")).toBe("seed-mode");
    expect(firstInvalidControl({ seed: "x" }, "fixed")).toBe("seed");
    expect(firstInvalidControl({}, "fixed")).toBeNull();
  });

  it("submits on Ctrl+Enter in the prompt, while plain Enter makes a new line", async () => {
    const onSubmit = vi.fn();
    render(<Harness onSubmit={onSubmit} />);
    const prompt = screen.getByLabelText("Prompt");
    await userEvent.type(prompt, "a cat{Enter}on a mat");
    expect(onSubmit).not.toHaveBeenCalled();
    expect(state().prompt).toBe("a cat\non a mat");
    fireEvent.keyDown(prompt, { key: "Enter", ctrlKey: true });
    expect(onSubmit).toHaveBeenCalledTimes(1);
  });

  it("flags the demo model as noise and offers its family's size presets", async () => {
    render(<Harness />);
    expect(screen.getByRole("option", { name: "Tiny SD 1.5 · SD 1.5 · demo (noise)" })).toBeInTheDocument();
    expect(screen.getByRole("note")).toHaveTextContent("its images are noise");
    await userEvent.selectOptions(screen.getByLabelText("Model"), "xl");
    expect(screen.queryByRole("note")).not.toBeInTheDocument();
    await userEvent.selectOptions(screen.getByLabelText("Size"), "Portrait 832×1216");
    expect(state()).toMatchObject({ model: "xl", width: 832, height: 1216 });
  });

  it("asks for a seed value only when the seed is fixed", async () => {
    render(<Harness />);
    expect(screen.queryByLabelText("Seed value")).not.toBeInTheDocument();
    expect(screen.getByRole("option", { name: "Reuse last" })).toBeDisabled();
    await userEvent.selectOptions(screen.getByLabelText("Seed"), "fixed");
    await userEvent.clear(screen.getByLabelText("Seed value"));
    await userEvent.type(screen.getByLabelText("Seed value"), "1234");
    expect(state()).toMatchObject({ seedMode: "fixed", seed: 1234 });
  });
});
