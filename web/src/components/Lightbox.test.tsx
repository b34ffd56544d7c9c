import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import type { GalleryImage } from "@/api/client";

import { Lightbox, type LightboxActions } from "./Lightbox";

function image(job: string, seed: number): GalleryImage {
  return {
    job_id: job,
    index: 0,
    image_url: `/outputs/${job}/0.png`,
    thumb_url: `/api/v1/gallery/${job}/0/thumb.webp`,
    seed,
    prompt: "a fox",
    negative_prompt: "",
    model: "tiny",
    width: 64,
    height: 64,
    steps: 2,
    sampler: "euler_a",
    cfg_scale: 7,
    infotext: `a fox\nSeed: ${seed}`,
    created_at: "2024-01-01T00:00:00Z",
  };
}

const images = [image("j1", 1), image("j2", 2)];
const actions: LightboxActions = { onReuseSettings: () => {}, onReuseSeed: () => {}, onDelete: () => {} };

afterEach(() => {
  vi.restoreAllMocks();
});

describe("Lightbox", () => {
  it("starts every image it opens unzoomed and with a fresh copy button", async () => {
    // Closed after copying and zooming, then opened on another image: neither state carries over.
    const user = userEvent.setup();
    vi.spyOn(navigator.clipboard, "writeText").mockResolvedValue();
    const view = render(<Lightbox images={images} index={0} onIndex={() => {}} actions={actions} />);
    await user.click(screen.getByRole("button", { name: "Copy parameters", hidden: true }));
    await user.click(screen.getByRole("button", { name: "Zoom to 100 %", hidden: true }));
    expect(screen.getByRole("button", { name: "Copied", hidden: true })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Fit to window", hidden: true })).toHaveAttribute("aria-pressed", "true");

    view.rerender(<Lightbox images={images} index={null} onIndex={() => {}} actions={actions} />);
    view.rerender(<Lightbox images={images} index={1} onIndex={() => {}} actions={actions} />);
    expect(screen.getByRole("button", { name: "Copy parameters", hidden: true })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Zoom to 100 %", hidden: true })).toHaveAttribute("aria-pressed", "false");
  });
});
