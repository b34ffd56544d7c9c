import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import type { Job } from "@/api/client";
import { makeRequest } from "@/testing/requests";

import { ResultsGrid } from "./ResultsGrid";

const job: Job = {
  id: "0123456789",
  status: "completed",
  progress: 100,
  step: 2,
  total_steps: 2,
  queue_position: null,
  priority: 0,
  attempts: 1,
  created_at: "2024-01-01T00:00:00Z",
  request: makeRequest({ prompt: "a fox", negative_prompt: "", width: 64, height: 64, steps: 2, cfg_scale: 7, sampler: "euler_a", seed: 10, batch_size: 2, priority: 0, model: "tiny", previews: false }),
  results: [
    { image_url: "/outputs/0123456789/0.png", seed: 10, index: 0, infotext: "a fox\nSteps: 2, Seed: 10" },
    { image_url: "/outputs/0123456789/1.png", seed: 11, index: 1, infotext: "a fox\nSteps: 2, Seed: 11" },
  ],
};

describe("ResultsGrid", () => {
  it("shows each image with its seed, parameters and a download link", () => {
    render(<ResultsGrid job={job} />);
    const cards = screen.getAllByTestId("result");
    expect(cards.map((c) => within(c).getByTestId("result-seed").textContent)).toEqual(["Seed 10", "Seed 11"]);
    expect(within(cards[1]!).getByRole("img")).toHaveAttribute("src", "/outputs/0123456789/1.png");
    expect(within(cards[1]!).getByText("64×64 · 2 steps · CFG 7 · euler_a · tiny")).toBeInTheDocument();
    expect(within(cards[0]!).getByRole("link", { name: "Download" })).toHaveAttribute("download", "ablerefusal-01234567-0-10.png");
  });

  it("reuses the seed of the image the user picked", async () => {
    const onReuseSeed = vi.fn();
    render(<ResultsGrid job={job} actions={{ onReuseSeed }} />);
    await userEvent.click(within(screen.getAllByTestId("result")[1]!).getByRole("button", { name: "Reuse seed" }));
    expect(onReuseSeed).toHaveBeenCalledWith(job, 11);
  });

  it("sends the image picked, from its card or from the large view, to the Image tab", async () => {
    const user = userEvent.setup();
    const onSendToImage = vi.fn();
    render(<ResultsGrid job={job} actions={{ onSendToImage }} />);
    await user.click(within(screen.getAllByTestId("result")[1]!).getByRole("button", { name: "Send to image" }));
    expect(onSendToImage).toHaveBeenLastCalledWith(job, job.results?.[1]);
    await user.click(screen.getByRole("button", { name: "Open image 1 large" }));
    const dialog = document.querySelector<HTMLElement>("dialog.lightbox")!;
    await user.click(within(dialog).getByRole("button", { name: "Send to image", hidden: true }));
    expect(onSendToImage).toHaveBeenLastCalledWith(job, job.results?.[0]);
  });

  it("copies the A1111 parameters text", async () => {
    const user = userEvent.setup();
    render(<ResultsGrid job={job} />);
    await user.click(within(screen.getAllByTestId("result")[0]!).getByRole("button", { name: "Copy parameters" }));
    expect(await navigator.clipboard.readText()).toBe("a fox\nSteps: 2, Seed: 10");
    expect(within(screen.getAllByTestId("result")[0]!).getByRole("button", { name: "Copied" })).toBeInTheDocument();
  });

  it("lets a single image fill the output area; several share it as tiles", () => {
    const single: Job = { ...job, results: [job.results![0]!] };
    const { container, rerender } = render(<ResultsGrid job={single} />);
    expect(container.querySelector(".results-grid")).toHaveClass("results-single");
    rerender(<ResultsGrid job={job} />);
    expect(container.querySelector(".results-grid")).not.toHaveClass("results-single");
  });
});
