import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import type { GenerateRequest, Job } from "@/api/client";
import { KEYS, loadJSON } from "@/lib/storage";
import { json, stubGateway } from "@/testing/gateway";
import { makeRequest } from "@/testing/requests";

import App from "./App";

const models = { models: [{ id: "tiny", name: "Tiny", family: "sd15", format: "diffusers", demo: false, loaded: true, inpainting: false, default_size: 64, kind: "checkpoint" }], default: "tiny" };
const samplers = { samplers: [{ id: "euler_a", name: "Euler a", aliases: [] }] };

const base = {
  "GET /api/v1/models": () => json(models),
  "GET /api/v1/samplers": () => json(samplers),
  "GET /api/v1/ready": () => json({ ready: true, store: true, workers: [], reason: null }),
  "GET /api/v1/queue": () => json({ counts: {}, running: [], queued: [], max_queue_length: 10 }),
};

function completed(id: string, request: GenerateRequest): Job {
  return {
    id,
    status: "completed",
    progress: 100,
    step: 2,
    total_steps: 2,
    queue_position: null,
    priority: 0,
    attempts: 1,
    created_at: "2024-01-01T00:00:00Z",
    request,
    results: [{ image_url: `/outputs/${id}/0.png`, seed: 7, index: 0, infotext: request.prompt, metadata: {} }],
  };
}

/** POST /uploads answers the init image first, then the mask (each a new id, as content addressing gives). */
function uploads(sizes: [number, number][]) {
  let n = 0;
  return () => {
    const [width, height] = sizes[Math.min(n, sizes.length - 1)]!;
    n += 1;
    return json({ id: `up${n}`, width, height, url: `/api/v1/uploads/up${n}` }, 201);
  };
}

function canvas(size: number): HTMLCanvasElement {
  const el = screen.getByRole("application") as HTMLCanvasElement;
  el.getBoundingClientRect = () => ({ left: 0, top: 0, width: size, height: size, right: size, bottom: size, x: 0, y: 0, toJSON: () => ({}) });
  return el;
}

beforeEach(() => window.history.replaceState(null, "", "/#image"));
afterEach(() => vi.unstubAllGlobals());

describe("Image tab", { timeout: 20_000 }, () => {
  it("uploads the picked image, takes its size, and sends it with the painted mask and the image settings", async () => {
    const user = userEvent.setup();
    const submitted: GenerateRequest[] = [];
    const seen = stubGateway({
      ...base,
      "POST /api/v1/uploads": uploads([[99, 61], [99, 61]]),
      "POST /api/v1/generate": async (r) => {
        const body = (await r.json()) as GenerateRequest;
        submitted.push(body);
        return json(completed("img1", body), 202);
      },
      "GET /api/v1/generate/img1": () => json(completed("img1", submitted[0]!)),
    });
    render(<App />);
    expect(screen.getByRole("link", { name: "Image" })).toHaveAttribute("aria-current", "page");
    await user.upload(screen.getByTestId("image-file"), new File([new Uint8Array([137, 80, 78, 71])], "in.png", { type: "image/png" }));
    expect(await screen.findByTestId("input-size")).toHaveTextContent("99×61");
    // The nearest size a job may ask for: multiples of 8.
    expect(screen.getByLabelText("Width")).toHaveValue(96);
    expect(screen.getByLabelText("Height")).toHaveValue(64);

    const el = canvas(99);
    fireEvent.pointerDown(el, { pointerId: 1, button: 0, clientX: 10, clientY: 30 });
    fireEvent.pointerMove(el, { pointerId: 1, clientX: 90, clientY: 30 });
    fireEvent.pointerUp(el, { pointerId: 1 });
    expect(screen.getByTestId("mask-coverage")).toHaveTextContent(/Mask covers/);

    await user.type(screen.getByLabelText("Prompt"), "a ribbon");
    fireEvent.change(screen.getByLabelText("Denoising strength"), { target: { value: "0.4" } });
    await user.selectOptions(screen.getByLabelText("Masked content"), "latent_noise");
    await user.clear(screen.getByLabelText("Top"));
    await user.type(screen.getByLabelText("Top"), "16");
    expect(screen.getByText(/Result: 96×80/)).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Generate" }));

    await waitFor(() => expect(submitted).toHaveLength(1));
    expect(submitted[0]).toMatchObject({
      prompt: "a ribbon",
      init_image: "up1",
      mask: "up2",
      denoising_strength: 0.4,
      inpainting_fill: "latent_noise",
      outpaint: { left: 0, right: 0, top: 16, bottom: 0 },
      width: 96,
      height: 64,
    });
    expect(submitted[0]).not.toHaveProperty("hires");
    // The mask went up as its own upload, after the image and before the job.
    expect(seen.filter((r) => r.method === "POST").map((r) => new URL(r.url).pathname)).toEqual(["/api/v1/uploads", "/api/v1/uploads", "/api/v1/generate"]);
    expect(loadJSON(KEYS.activeImageJob, null)).toBe("img1");
    // The result shows in the Output region, beside the Input one.
    expect(await within(screen.getByRole("region", { name: "Output" })).findByTestId("result")).toBeInTheDocument();
    expect(screen.getByRole("region", { name: "Input" })).toBeInTheDocument();
  });

  it("without a painted mask, the job is plain image-to-image: no mask upload, no mask field", async () => {
    const user = userEvent.setup();
    const submitted: GenerateRequest[] = [];
    const seen = stubGateway({
      ...base,
      "POST /api/v1/uploads": uploads([[64, 64]]),
      "POST /api/v1/generate": async (r) => {
        submitted.push((await r.json()) as GenerateRequest);
        return json(completed("img2", submitted[0]!), 202);
      },
      "GET /api/v1/generate/img2": () => json(completed("img2", submitted[0]!)),
    });
    render(<App />);
    await user.upload(screen.getByTestId("image-file"), new File([new Uint8Array([1])], "in.png", { type: "image/png" }));
    await screen.findByTestId("input-size");
    await user.type(screen.getByLabelText("Prompt"), "a fox");
    await user.click(screen.getByRole("button", { name: "Generate" }));
    await waitFor(() => expect(submitted).toHaveLength(1));
    expect(submitted[0]!.mask).toBeNull();
    expect(submitted[0]!.init_image).toBe("up1");
    expect(seen.filter((r) => r.method === "POST" && r.url.endsWith("/uploads"))).toHaveLength(1);
  });

  it("refuses to submit without an image, naming it and putting the keyboard on the picker", async () => {
    const user = userEvent.setup();
    const seen = stubGateway(base);
    render(<App />);
    await user.type(await screen.findByLabelText("Prompt"), "a fox");
    await user.click(screen.getByRole("button", { name: "Generate" }));
    expect(screen.getByRole("alert")).toHaveTextContent("Not submitted. Image: choose or drop an image first.");
    expect(screen.getByRole("button", { name: "Choose image…" })).toHaveFocus();
    expect(screen.getByRole("button", { name: "Choose image…" })).toHaveAccessibleDescription("Image: choose or drop an image first");
    expect(seen.some((r) => r.method === "POST")).toBe(false);
  });

  it("says why a file was refused, and keeps no image", async () => {
    const user = userEvent.setup();
    stubGateway({
      ...base,
      "POST /api/v1/uploads": () =>
        json({ error: { code: "invalid_request", message: "file: not a PNG, JPEG or WebP image", details: [{ field: "file", message: "not a PNG, JPEG or WebP image" }] } }, 400),
    });
    render(<App />);
    // A file the browser calls an image, whose bytes are text: the gateway decides from the bytes.
    await user.upload(screen.getByTestId("image-file"), new File(["hello"], "fake.png", { type: "image/png" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Image not used: file: not a PNG, JPEG or WebP image");
    expect(screen.queryByTestId("input-size")).toBeNull();
    expect(loadJSON(KEYS.imageInput, null)).toBeNull();
  });

  it("a dropped image becomes the input, and the page-wide PNG-info drop leaves it alone", async () => {
    stubGateway({ ...base, "POST /api/v1/uploads": uploads([[64, 64]]) });
    render(<App />);
    const file = new File([new Uint8Array([1])], "dropped.png", { type: "image/png" });
    const dataTransfer = { files: [file], types: ["Files"] };
    const zone = screen.getByTestId("image-drop");
    fireEvent.dragOver(zone, { dataTransfer });
    fireEvent.drop(zone, { dataTransfer });
    expect(await screen.findByTestId("input-size")).toHaveTextContent("64×64");
    expect(screen.queryByRole("dialog", { name: "Image parameters" })).toBeNull();
  });

  it("'Send to image' on a result uploads its pixels and brings its prompt to the Image tab", async () => {
    const user = userEvent.setup();
    window.history.replaceState(null, "", "/?job=t1#generate");
    const made = completed("t1", makeRequest({ prompt: "a harbour", width: 64, height: 64, steps: 2, seed: 7 }));
    const png = new Blob([new Uint8Array([137, 80, 78, 71])], { type: "image/png" });
    const seen = stubGateway({
      ...base,
      "GET /api/v1/generate/t1": () => json(made),
      // A jsdom Blob (FormData takes no other), as the browser's fetch gives.
      "GET /outputs/t1/0.png": () => ({ ok: true, status: 200, blob: async () => png }) as unknown as Response,
      "POST /api/v1/uploads": uploads([[64, 64]]),
    });
    render(<App />);
    const result = await screen.findByTestId("result");
    await user.click(within(result).getByRole("button", { name: "Send to image" }));
    expect(screen.getByRole("link", { name: "Image" })).toHaveAttribute("aria-current", "page");
    expect(await screen.findByTestId("input-size")).toHaveTextContent("64×64");
    expect(screen.getByLabelText("Prompt")).toHaveValue("a harbour");
    expect(seen.map((r) => `${r.method} ${new URL(r.url).pathname}`)).toEqual(expect.arrayContaining(["GET /outputs/t1/0.png", "POST /api/v1/uploads"]));
    expect(loadJSON(KEYS.imageInput, null)).toMatchObject({ id: "up1", width: 64, height: 64 });
  });
});
