import { EMPTY_HISTORY, maskPng, MaskRaster, pushOp, rasterize, redo, stepBrush, undo, type MaskOp } from "./mask";

const stroke = (points: [number, number][], size: number, erase = false): MaskOp => ({ kind: "stroke", erase, size, points });
const at = (r: MaskRaster, x: number, y: number) => r.data[y * r.width + x];
const painted = (r: MaskRaster) => r.data.filter((v) => v === 255).length;

/** Reads back a greyscale PNG the way a decoder does: chunks, CRCs, zlib, filter bytes. */
async function decodePng(blob: Blob): Promise<{ width: number; height: number; depth: number; colour: number; pixels: Uint8Array }> {
  // jsdom's Blob has no arrayBuffer(); FileReader is what it offers.
  const buffer = await new Promise<ArrayBuffer>((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result as ArrayBuffer);
    reader.onerror = () => reject(reader.error);
    reader.readAsArrayBuffer(blob);
  });
  const bytes = new Uint8Array(buffer);
  expect([...bytes.subarray(0, 8)]).toEqual([137, 80, 78, 71, 13, 10, 26, 10]);
  const view = new DataView(bytes.buffer);
  let offset = 8;
  let header: { width: number; height: number; depth: number; colour: number } | null = null;
  const idat: Uint8Array[] = [];
  while (offset < bytes.length) {
    const length = view.getUint32(offset);
    const type = new TextDecoder().decode(bytes.subarray(offset + 4, offset + 8));
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    if (type === "IHDR") header = { width: view.getUint32(offset + 8), height: view.getUint32(offset + 12), depth: data[8]!, colour: data[9]! };
    if (type === "IDAT") idat.push(data);
    offset += 12 + length;
  }
  const source = new ReadableStream<Uint8Array<ArrayBuffer>>({
    start(controller) {
      for (const d of idat) controller.enqueue(new Uint8Array(d));
      controller.close();
    },
  });
  const stream = source.pipeThrough(new DecompressionStream("deflate"));
  const raw = new Uint8Array(await new Response(stream).arrayBuffer());
  const { width, height } = header!;
  const pixels = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    expect(raw[y * (width + 1)]).toBe(0); // filter: none
    pixels.set(raw.subarray(y * (width + 1) + 1, (y + 1) * (width + 1)), y * width);
  }
  return { ...header!, pixels };
}

describe("MaskRaster", () => {
  it("paints a round dot: pixels whose centre is within the radius, nothing else", () => {
    const r = rasterize(20, 20, [stroke([[10, 10]], 4)]);
    // Radius 2 around (10, 10): centres 9.5 and 10.5 are inside on both axes, 8.5 and 11.5 only on one.
    expect(at(r, 9, 9)).toBe(255);
    expect(at(r, 10, 10)).toBe(255);
    expect(at(r, 8, 9)).toBe(255);
    expect(at(r, 7, 10)).toBe(0);
    expect(at(r, 12, 12)).toBe(0);
    expect(painted(r)).toBe(12);
  });

  it("joins the points of a stroke into one band, and the eraser takes it back", () => {
    const r = rasterize(40, 10, [stroke([[5, 5], [35, 5]], 4)]);
    for (let x = 5; x < 35; x++) expect(at(r, x, 5)).toBe(255);
    expect(at(r, 20, 1)).toBe(0);
    r.apply(stroke([[20, 5]], 6, true));
    expect(at(r, 20, 5)).toBe(0);
    expect(at(r, 10, 5)).toBe(255);
  });

  it("inverts and clears the whole mask; an empty mask says so", () => {
    const r = rasterize(8, 8, []);
    expect(r.isEmpty()).toBe(true);
    r.apply({ kind: "invert" });
    expect(painted(r)).toBe(64);
    r.apply({ kind: "clear" });
    expect(r.isEmpty()).toBe(true);
  });

  it("keeps strokes inside the image", () => {
    const r = rasterize(10, 10, [stroke([[-50, -50], [0, 0]], 4)]);
    expect(at(r, 0, 0)).toBe(255);
    expect(painted(r)).toBeGreaterThan(0);
  });
});

describe("history", () => {
  it("undo and redo move through the operations; a new one drops what was undone", () => {
    const a = stroke([[1, 1]], 2);
    const b = stroke([[5, 5]], 2);
    let h = pushOp(pushOp(EMPTY_HISTORY, a), b);
    h = undo(h);
    expect(h.ops).toEqual([a]);
    expect(redo(h).ops).toEqual([a, b]);
    h = pushOp(h, { kind: "invert" });
    expect(h.undone).toEqual([]);
    expect(undo(undo(undo(h))).ops).toEqual([]);
  });

  it("brush steps are felt at every size and stay within 1–512", () => {
    expect(stepBrush(1, true)).toBe(2);
    expect(stepBrush(2, false)).toBe(1);
    expect(stepBrush(1, false)).toBe(1);
    expect(stepBrush(40, true)).toBe(50);
    expect(stepBrush(500, true)).toBe(512);
  });
});

describe("maskPng", () => {
  it("is a greyscale PNG of the image's size, white where painted and black elsewhere", async () => {
    const r = rasterize(24, 16, [stroke([[4, 4], [12, 4]], 4)]);
    const png = await decodePng(await maskPng(r));
    expect(png).toMatchObject({ width: 24, height: 16, depth: 8, colour: 0 });
    expect([...png.pixels]).toEqual([...r.data]);
    expect(png.pixels[4 * 24 + 8]).toBe(255);
    expect(png.pixels[12 * 24 + 20]).toBe(0);
  });
});
