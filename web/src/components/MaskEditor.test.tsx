import { fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";

import { EMPTY_HISTORY, rasterize, type MaskHistory } from "@/lib/mask";

import { MaskEditor } from "./MaskEditor";

const SIZE = 64;

function Harness({ onHistory = () => {} }: { onHistory?: (h: MaskHistory) => void }) {
  const [history, setHistory] = useState<MaskHistory>(EMPTY_HISTORY);
  return (
    <MaskEditor
      image={{ url: "/api/v1/uploads/abc", width: SIZE, height: SIZE }}
      alt="Input image"
      history={history}
      onHistory={(h) => {
        onHistory(h);
        setHistory(h);
      }}
    />
  );
}

/** The canvas shown at twice the image's size, so a pointer position maps to half of it in image pixels. */
function canvas(): HTMLCanvasElement {
  const el = screen.getByRole("application") as HTMLCanvasElement;
  el.getBoundingClientRect = () => ({ left: 10, top: 20, width: SIZE * 2, height: SIZE * 2, right: 0, bottom: 0, x: 10, y: 20, toJSON: () => ({}) });
  return el;
}

const coverage = () => screen.getByTestId("mask-coverage");

describe("MaskEditor", () => {
  it("paints a stroke with a pointer, mapped from screen to image pixels, as one undoable operation", async () => {
    const seen: MaskHistory[] = [];
    render(<Harness onHistory={(h) => seen.push(h)} />);
    const el = canvas();
    expect(coverage()).toHaveTextContent("No mask");
    fireEvent.pointerDown(el, { pointerId: 1, button: 0, clientX: 10 + 20 * 2, clientY: 20 + 32 * 2 });
    fireEvent.pointerMove(el, { pointerId: 1, clientX: 10 + 40 * 2, clientY: 20 + 32 * 2 });
    fireEvent.pointerUp(el, { pointerId: 1, clientX: 10 + 40 * 2, clientY: 20 + 32 * 2 });
    expect(seen).toHaveLength(1);
    const ops = seen[0]!.ops;
    expect(ops).toEqual([{ kind: "stroke", erase: false, size: 5, points: [[20, 32], [40, 32]] }]);
    const mask = rasterize(SIZE, SIZE, ops);
    expect(mask.data[32 * SIZE + 30]).toBe(255);
    expect(mask.data[10 * SIZE + 30]).toBe(0);
    expect(coverage()).toHaveTextContent(/Mask covers \d/);

    await userEvent.click(screen.getByRole("button", { name: "Undo" }));
    expect(coverage()).toHaveTextContent("No mask");
    await userEvent.click(screen.getByRole("button", { name: "Redo" }));
    expect(coverage()).toHaveTextContent(/Mask covers \d/);
  });

  it("a second finger does not join the stroke of the first", () => {
    const seen: MaskHistory[] = [];
    render(<Harness onHistory={(h) => seen.push(h)} />);
    const el = canvas();
    fireEvent.pointerDown(el, { pointerId: 1, button: 0, clientX: 30, clientY: 40 });
    fireEvent.pointerDown(el, { pointerId: 2, button: 0, clientX: 100, clientY: 100 });
    fireEvent.pointerMove(el, { pointerId: 2, clientX: 120, clientY: 120 });
    fireEvent.pointerUp(el, { pointerId: 2 });
    expect(seen).toHaveLength(0);
    fireEvent.pointerUp(el, { pointerId: 1 });
    expect(seen[0]!.ops).toEqual([{ kind: "stroke", erase: false, size: 5, points: [[10, 10]] }]);
  });

  it("has keyboard shortcuts for brush size, eraser, invert, undo and redo", async () => {
    const user = userEvent.setup();
    render(<Harness />);
    canvas().focus();
    expect(screen.getByTestId("brush-size-value")).toHaveTextContent("5 px");
    await user.keyboard("]");
    expect(screen.getByTestId("brush-size-value")).toHaveTextContent("6 px");
    // "[[" is how user-event spells one literal "[" key.
    await user.keyboard("[[[[");
    expect(screen.getByTestId("brush-size-value")).toHaveTextContent("4 px");
    await user.keyboard("e");
    expect(screen.getByRole("button", { name: "Eraser" })).toHaveAttribute("aria-pressed", "true");
    expect(screen.getByRole("application")).toHaveAccessibleName("Mask over the input image: eraser, 4 px");
    await user.keyboard("b");
    expect(screen.getByRole("button", { name: "Brush" })).toHaveAttribute("aria-pressed", "true");
    await user.keyboard("i");
    expect(coverage()).toHaveTextContent("Mask covers 100 %");
    await user.keyboard("{Control>}z{/Control}");
    expect(coverage()).toHaveTextContent("No mask");
    await user.keyboard("{Control>}{Shift>}z{/Shift}{/Control}");
    expect(coverage()).toHaveTextContent("Mask covers 100 %");
    await user.click(screen.getByRole("button", { name: "Clear mask" }));
    expect(coverage()).toHaveTextContent("No mask");
  });

  it("paints from the keyboard: Space puts the brush down, the arrows draw, Space lifts it", async () => {
    const user = userEvent.setup();
    const seen: MaskHistory[] = [];
    render(<Harness onHistory={(h) => seen.push(h)} />);
    canvas().focus();
    await user.keyboard(" ");
    expect(screen.getByRole("application")).toHaveAccessibleName(/brush down/);
    await user.keyboard("{ArrowRight}{ArrowRight}");
    await user.keyboard(" ");
    // From the centre, two steps of half the brush (3 px each, rounded) to the right.
    expect(seen.at(-1)!.ops).toEqual([{ kind: "stroke", erase: false, size: 5, points: [[32, 32], [35, 32], [38, 32]] }]);
    expect(screen.getByRole("application")).not.toHaveAccessibleName(/brush down/);
  });

  it("the size keys work on the brush size slider too, without touching the mask", () => {
    render(<Harness />);
    // A range keeps its own arrow keys; [ and ] are not among them.
    const slider = screen.getByLabelText(/Brush size/);
    fireEvent.keyDown(slider, { key: "]" });
    expect(screen.getByTestId("brush-size-value")).toHaveTextContent("6 px");
    expect(screen.getByRole("button", { name: "Undo" })).toBeDisabled();
  });

  it("documents its shortcuts in the page, linked to the canvas", () => {
    render(<Harness />);
    expect(screen.getByRole("application")).toHaveAccessibleDescription(/Ctrl\+Z/);
    expect(screen.getByRole("button", { name: "Invert mask" })).toHaveAttribute("aria-keyshortcuts", "I");
  });
});
