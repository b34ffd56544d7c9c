import { QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";

import type { GalleryImage, GalleryPage } from "@/api/client";
import { makeQueryClient, type GalleryFilter } from "@/api/queries";
import { galleryImage as image } from "@/testing/gallery";
import { json, stubGateway } from "@/testing/gateway";

import { GalleryPanel, NO_FILTER } from "./GalleryPanel";

const images = [image("j2", 0, "a fox", 20), image("j2", 1, "a fox", 21), image("j1", 0, "a cat", 10)];
const pageOf = (items: GalleryImage[], total = items.length): GalleryPage => ({ items, total, offset: 0, limit: 100, models: ["big", "tiny"] });

function Harness({ onReuse = () => {}, onSendToImage }: { onReuse?: (image: GalleryImage, withSeed: boolean) => void; onSendToImage?: (image: GalleryImage) => void }) {
  const [client] = useState(makeQueryClient);
  const [filter, setFilter] = useState<GalleryFilter>(NO_FILTER);
  return (
    <QueryClientProvider client={client}>
      <GalleryPanel filter={filter} onFilter={setFilter} onReuse={onReuse} onSendToImage={onSendToImage} />
    </QueryClientProvider>
  );
}

afterEach(() => {
  vi.unstubAllGlobals();
  // Spies (window.confirm, the clipboard) carry their calls into the next test unless restored.
  vi.restoreAllMocks();
});

describe("GalleryPanel", () => {
  it("shows thumbnails newest first and filters by model and prompt text", async () => {
    const user = userEvent.setup();
    const seen = stubGateway({ "GET /api/v1/gallery": () => json(pageOf(images, 250)) });
    render(<Harness />);
    const tiles = await screen.findAllByTestId("gallery-tile");
    expect(tiles.map((t) => within(t).getByRole("img").getAttribute("src"))).toEqual(images.map((i) => i.thumb_url));
    expect(screen.getByTestId("gallery-range")).toHaveTextContent("1–3 of 250");
    await user.selectOptions(screen.getByLabelText("Model"), "big");
    await user.type(screen.getByLabelText("Search prompts"), "fox 100%{enter}");
    await waitFor(() => {
      const query = new URL(seen.at(-1)!.url).searchParams;
      expect([query.get("offset"), query.get("model"), query.get("q")]).toEqual(["0", "big", "fox 100%"]);
    });
    await user.click(screen.getByRole("button", { name: "Older" }));
    await waitFor(() => expect(new URL(seen.at(-1)!.url).searchParams.get("offset")).toBe("100"));
  });

  it("opens an image large and moves with the arrow keys", async () => {
    const user = userEvent.setup();
    stubGateway({ "GET /api/v1/gallery": () => json(pageOf(images)) });
    const onReuse = vi.fn();
    render(<Harness onReuse={onReuse} />);
    await user.click(await screen.findByRole("button", { name: "Open a fox (seed 21)" }));
    // jsdom has no modal dialogs: the viewer's content is there but outside the accessibility tree.
    const viewer = document.querySelector<HTMLElement>('dialog[aria-label="Image viewer"]')!;
    expect(within(viewer).getByTestId("lightbox-seed")).toHaveTextContent("21");
    within(viewer).getByRole("button", { name: "Next image", hidden: true }).focus();
    await user.keyboard("{ArrowRight}");
    expect(within(viewer).getByTestId("lightbox-seed")).toHaveTextContent("10");
    expect(within(viewer).getByTestId("lightbox-position")).toHaveTextContent("3 of 3");
    await user.keyboard("{ArrowRight}"); // the last one stays
    expect(within(viewer).getByTestId("lightbox-seed")).toHaveTextContent("10");
    await user.keyboard("{ArrowLeft}{ArrowLeft}");
    expect(within(viewer).getByTestId("lightbox-seed")).toHaveTextContent("20");
    expect(within(viewer).getByRole("img", { hidden: true })).toHaveAttribute("src", "/outputs/j2/0.png");
    await user.click(within(viewer).getByRole("button", { name: "Zoom to 100 %", hidden: true }));
    expect(within(viewer).getByTestId("lightbox-image")).toHaveClass("zoomed");
    await user.click(within(viewer).getByRole("button", { name: "Reuse seed", hidden: true }));
    expect(onReuse).toHaveBeenCalledWith(images[0], true);
  });

  it("sends the image in the viewer to the Image tab", async () => {
    const user = userEvent.setup();
    stubGateway({ "GET /api/v1/gallery": () => json(pageOf(images)) });
    const onSendToImage = vi.fn();
    render(<Harness onSendToImage={onSendToImage} />);
    await user.click(await screen.findByRole("button", { name: "Open a cat (seed 10)" }));
    const viewer = document.querySelector<HTMLElement>('dialog[aria-label="Image viewer"]')!;
    await user.click(within(viewer).getByRole("button", { name: "Send to image", hidden: true }));
    expect(onSendToImage).toHaveBeenCalledWith(images[2]);
  });

  it("copies the parameters of the image in the viewer", async () => {
    const user = userEvent.setup();
    stubGateway({ "GET /api/v1/gallery": () => json(pageOf(images)) });
    const writeText = vi.spyOn(navigator.clipboard, "writeText").mockResolvedValue();
    render(<Harness />);
    await user.click(await screen.findByRole("button", { name: "Open a fox (seed 21)" }));
    const viewer = document.querySelector<HTMLElement>('dialog[aria-label="Image viewer"]')!;
    await user.click(within(viewer).getByRole("button", { name: "Copy parameters", hidden: true }));
    expect(writeText).toHaveBeenCalledExactlyOnceWith("a fox\nSeed: 21");
    expect(within(viewer).getByRole("button", { name: "Copied", hidden: true })).toBeInTheDocument();
  });

  it("downloads the image in the viewer under its own file name", async () => {
    const user = userEvent.setup();
    stubGateway({ "GET /api/v1/gallery": () => json(pageOf(images)) });
    render(<Harness />);
    await user.click(await screen.findByRole("button", { name: "Open a fox (seed 21)" }));
    const viewer = document.querySelector<HTMLElement>('dialog[aria-label="Image viewer"]')!;
    const link = within(viewer).getByRole("link", { name: "Download", hidden: true });
    expect(link).toHaveAttribute("href", "/outputs/j2/1.png");
    expect(link).toHaveAttribute("download", "ablerefusal-j2-1-21.png");
  });

  it("reuses the settings of the image in the viewer without its seed", async () => {
    const user = userEvent.setup();
    stubGateway({ "GET /api/v1/gallery": () => json(pageOf(images)) });
    const onReuse = vi.fn();
    render(<Harness onReuse={onReuse} />);
    await user.click(await screen.findByRole("button", { name: "Open a cat (seed 10)" }));
    const viewer = document.querySelector<HTMLElement>('dialog[aria-label="Image viewer"]')!;
    await user.click(within(viewer).getByRole("button", { name: "Reuse settings", hidden: true }));
    expect(onReuse).toHaveBeenCalledExactlyOnceWith(images[2], false);
  });

  it("deletes the job of the image in the viewer once confirmed", async () => {
    const user = userEvent.setup();
    let deleteBody: unknown = null;
    stubGateway({
      "GET /api/v1/gallery": () => json(pageOf(images)),
      "POST /api/v1/gallery/delete": async (r) => {
        deleteBody = await r.json();
        return json({ deleted: ["j2"] });
      },
    });
    const confirm = vi.spyOn(window, "confirm").mockReturnValue(true);
    render(<Harness />);
    await user.click(await screen.findByRole("button", { name: "Open a fox (seed 21)" }));
    const viewer = document.querySelector<HTMLElement>('dialog[aria-label="Image viewer"]')!;
    await user.click(within(viewer).getByRole("button", { name: "Delete", hidden: true }));
    expect(confirm).toHaveBeenCalledExactlyOnceWith("Delete 1 job(s) with all their images?");
    await waitFor(() => expect(deleteBody).toEqual({ job_ids: ["j2"] }));
    await waitFor(() => expect(within(viewer).queryByTestId("lightbox-seed")).toBeNull());
  });

  it("deletes nothing when the delete in the viewer is cancelled", async () => {
    const user = userEvent.setup();
    const seen = stubGateway({ "GET /api/v1/gallery": () => json(pageOf(images)) });
    const confirm = vi.spyOn(window, "confirm").mockReturnValue(false);
    render(<Harness />);
    await user.click(await screen.findByRole("button", { name: "Open a fox (seed 21)" }));
    const viewer = document.querySelector<HTMLElement>('dialog[aria-label="Image viewer"]')!;
    await user.click(within(viewer).getByRole("button", { name: "Delete", hidden: true }));
    expect(confirm).toHaveBeenCalledOnce();
    expect(seen.filter((r) => r.method !== "GET")).toEqual([]);
    expect(within(viewer).getByTestId("lightbox-seed")).toHaveTextContent("21");
  });

  it("downloads the selected images as one zip and deletes their jobs in one request", async () => {
    const user = userEvent.setup();
    let zipBody: unknown = null;
    let deleteBody: unknown = null;
    stubGateway({
      "GET /api/v1/gallery": () => json(pageOf(images)),
      "POST /api/v1/gallery/zip": async (r) => {
        zipBody = await r.json();
        return new Response(new Blob(["PK"]), { headers: { "Content-Type": "application/zip" } });
      },
      "POST /api/v1/gallery/delete": async (r) => {
        deleteBody = await r.json();
        return json({ deleted: ["j2", "j1"] });
      },
    });
    const created = vi.fn(() => "blob:zip");
    vi.stubGlobal("URL", Object.assign(URL, { createObjectURL: created, revokeObjectURL: vi.fn() }));
    const clicked = vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(() => {});
    vi.spyOn(window, "confirm").mockReturnValue(true);
    render(<Harness />);
    await user.click(await screen.findByRole("checkbox", { name: "Select a fox (seed 21)" }));
    await user.click(screen.getByRole("checkbox", { name: "Select a cat (seed 10)" }));
    expect(screen.getByTestId("selected-count")).toHaveTextContent("2 selected");
    await user.click(screen.getByRole("button", { name: "Download zip" }));
    await waitFor(() => expect(clicked).toHaveBeenCalled());
    expect(zipBody).toEqual({ images: [{ job_id: "j2", index: 1 }, { job_id: "j1", index: 0 }] });
    await user.click(screen.getByRole("button", { name: "Delete selected" }));
    await waitFor(() => expect(deleteBody).toEqual({ job_ids: ["j2", "j1"] }));
    await waitFor(() => expect(screen.queryByTestId("selected-count")).toBeNull());
    clicked.mockRestore();
  });

  it("shows why a delete was refused and keeps the selection", async () => {
    const user = userEvent.setup();
    stubGateway({
      "GET /api/v1/gallery": () => json(pageOf(images)),
      "POST /api/v1/gallery/delete": () => json({ error: { code: "conflict", message: "job_ids: job j1 is running; cancel it first" } }, 409),
    });
    vi.spyOn(window, "confirm").mockReturnValue(true);
    render(<Harness />);
    await user.click(await screen.findByRole("checkbox", { name: "Select a cat (seed 10)" }));
    await user.click(screen.getByRole("button", { name: "Delete selected" }));
    expect(await screen.findByText(/job j1 is running; cancel it first/)).toBeInTheDocument();
    expect(screen.getByTestId("selected-count")).toHaveTextContent("1 selected");
  });
});
