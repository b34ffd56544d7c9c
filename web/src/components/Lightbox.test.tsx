import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import { galleryImage } from "@/testing/gallery";

import { Lightbox, type LightboxActions } from "./Lightbox";

const images = [galleryImage("j1", 0, "a fox", 1), galleryImage("j2", 0, "a fox", 2)];
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
