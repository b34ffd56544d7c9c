import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";

import { DEFAULT_PARAMS, type FormParams } from "@/lib/params";
import { loadStyles } from "@/lib/prompts";

import { PromptTools } from "./PromptTools";

function Harness({ initial }: { initial: FormParams }) {
  const [params, setParams] = useState(initial);
  return (
    <>
      <PromptTools params={params} onChange={setParams} history={[]} />
      <output data-testid="prompt">{params.prompt}</output>
      <output data-testid="negative">{params.negative_prompt}</output>
    </>
  );
}

describe("PromptTools", () => {
  it("saves the prompt and negative as a style and applies it to another prompt", async () => {
    const user = userEvent.setup();
    const { unmount } = render(<Harness initial={{ ...DEFAULT_PARAMS, prompt: "oil painting, {prompt}", negative_prompt: "photo" }} />);
    expect(screen.getByLabelText("Recent prompts")).toBeDisabled();
    await user.type(screen.getByLabelText("Save prompt and negative as a style"), "Oil");
    await user.click(screen.getByRole("button", { name: "Save style" }));
    expect(loadStyles()).toEqual([{ name: "Oil", prompt: "oil painting, {prompt}", negative_prompt: "photo" }]);
    unmount();

    // Kept across a reload: a new mount reads it back.
    render(<Harness initial={{ ...DEFAULT_PARAMS, prompt: "a fox", negative_prompt: "blurry" }} />);
    await user.selectOptions(screen.getByLabelText("Style"), "Oil");
    await user.click(screen.getByRole("button", { name: "Apply style" }));
    expect(screen.getByTestId("prompt")).toHaveTextContent("oil painting, a fox");
    expect(screen.getByTestId("negative")).toHaveTextContent("blurry, photo");
    await user.click(screen.getByRole("button", { name: "Delete style" }));
    expect(loadStyles()).toEqual([]);
  });
});
