// The inpainting mask as the editor paints it: a list of operations (strokes, erasures, clear, invert) replayed
// onto one byte per image pixel (255 = repaint). Keeping it as plain data rather than canvas pixels makes undo
// exact, keeps the mask binary and the same size as the image, and lets it be tested without a browser.

export type Point = readonly [x: number, y: number];

export type MaskOp =
  | { kind: "stroke"; erase: boolean; size: number; points: Point[] }
  | { kind: "clear" }
  | { kind: "invert" };

/** What the editor did and what it undid; a new operation drops the redo list, as in every editor. */
export interface MaskHistory {
  ops: MaskOp[];
  undone: MaskOp[];
}

export const EMPTY_HISTORY: MaskHistory = { ops: [], undone: [] };

export const pushOp = (history: MaskHistory, op: MaskOp): MaskHistory => ({ ops: [...history.ops, op], undone: [] });

export function undo(history: MaskHistory): MaskHistory {
  const last = history.ops.at(-1);
  return last ? { ops: history.ops.slice(0, -1), undone: [...history.undone, last] } : history;
}

export function redo(history: MaskHistory): MaskHistory {
  const next = history.undone.at(-1);
  return next ? { ops: [...history.ops, next], undone: history.undone.slice(0, -1) } : history;
}

/** A rectangle of pixels, [x0, x1) × [y0, y1): the part of the mask an operation changed. */
export interface Rect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export const BRUSH_MIN = 1;
export const BRUSH_MAX = 512;

/** The next brush size for `]` (up) or `[` (down): a step that is felt at any size, never stuck at 1. */
export function stepBrush(size: number, up: boolean): number {
  const next = up ? Math.max(size + 1, Math.round(size * 1.25)) : Math.min(size - 1, Math.round(size / 1.25));
  return Math.min(BRUSH_MAX, Math.max(BRUSH_MIN, next));
}

export class MaskRaster {
  readonly data: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Uint8Array(width * height);
  }

  /** Applies one operation; the rectangle it may have changed, or null when it changed nothing. */
  apply(op: MaskOp): Rect | null {
    if (op.kind === "clear") {
      this.data.fill(0);
      return this.whole();
    }
    if (op.kind === "invert") {
      this.data.forEach((v, i) => (this.data[i] = 255 - v));
      return this.whole();
    }
    const { points, size, erase } = op;
    let dirty: Rect | null = null;
    // The first point is a dot (a segment of length 0); each next one joins the one before.
    points.forEach((point, i) => {
      dirty = union(dirty, this.segment(points[i - 1] ?? point, point, size / 2, erase ? 0 : 255));
    });
    return dirty;
  }

  /**
   * A round brush dragged from `a` to `b`: every pixel whose centre lies within `radius` of the segment
   * (a capsule). Pixel (x, y) covers [x, x+1) × [y, y+1), so its centre is (x + 0.5, y + 0.5).
   */
  segment(a: Point, b: Point, radius: number, value: number): Rect | null {
    const r = Math.max(radius, 0.5);
    const x0 = Math.max(0, Math.floor(Math.min(a[0], b[0]) - r));
    const y0 = Math.max(0, Math.floor(Math.min(a[1], b[1]) - r));
    const x1 = Math.min(this.width, Math.ceil(Math.max(a[0], b[0]) + r));
    const y1 = Math.min(this.height, Math.ceil(Math.max(a[1], b[1]) + r));
    if (x0 >= x1 || y0 >= y1) return null;
    const dx = b[0] - a[0];
    const dy = b[1] - a[1];
    const length2 = dx * dx + dy * dy;
    const r2 = r * r;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const px = x + 0.5 - a[0];
        const py = y + 0.5 - a[1];
        const t = length2 === 0 ? 0 : Math.min(1, Math.max(0, (px * dx + py * dy) / length2));
        const ex = px - t * dx;
        const ey = py - t * dy;
        if (ex * ex + ey * ey <= r2) this.data[y * this.width + x] = value;
      }
    }
    return { x0, y0, x1, y1 };
  }

  /** True when no pixel is to be repainted: the job is then plain image-to-image, without a mask. */
  isEmpty(): boolean {
    return !this.data.some((v) => v !== 0);
  }

  whole(): Rect {
    return { x0: 0, y0: 0, x1: this.width, y1: this.height };
  }
}

function union(a: Rect | null, b: Rect | null): Rect | null {
  if (!a) return b;
  if (!b) return a;
  return { x0: Math.min(a.x0, b.x0), y0: Math.min(a.y0, b.y0), x1: Math.max(a.x1, b.x1), y1: Math.max(a.y1, b.y1) };
}

/** The mask of a history: every operation replayed in order on an empty mask of the image's size. */
export function rasterize(width: number, height: number, ops: readonly MaskOp[]): MaskRaster {
  const raster = new MaskRaster(width, height);
  for (const op of ops) raster.apply(op);
  return raster;
}

/** The overlay's pixels for a rectangle of the mask: the masked part in a translucent colour, the rest clear. */
export function overlayPixels(raster: MaskRaster, rect: Rect, rgba: readonly [number, number, number, number]): Uint8ClampedArray<ArrayBuffer> {
  const w = rect.x1 - rect.x0;
  const out = new Uint8ClampedArray(new ArrayBuffer(w * (rect.y1 - rect.y0) * 4));
  for (let y = rect.y0; y < rect.y1; y++) {
    for (let x = rect.x0; x < rect.x1; x++) {
      if (raster.data[y * raster.width + x] === 0) continue;
      const o = ((y - rect.y0) * w + (x - rect.x0)) * 4;
      out[o] = rgba[0];
      out[o + 1] = rgba[1];
      out[o + 2] = rgba[2];
      out[o + 3] = rgba[3];
    }
  }
  return out;
}

// -- PNG encoding: an 8-bit greyscale PNG of the mask (white = repaint), the format every API here reads. --

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

async function zlib(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  // CompressionStream's "deflate" is the zlib format (RFC 1950) that PNG's IDAT holds.
  const source = new ReadableStream<Uint8Array<ArrayBuffer>>({
    start(controller) {
      controller.enqueue(data);
      controller.close();
    },
  });
  const stream = source.pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The mask as PNG bytes: greyscale, the raster's size, 255 where the image is to be repainted. */
export async function maskPng(raster: MaskRaster): Promise<Blob> {
  const { width, height, data } = raster;
  // Each scanline starts with its filter type (0: none).
  const lines = new Uint8Array(new ArrayBuffer((width + 1) * height));
  for (let y = 0; y < height; y++) lines.set(data.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 0, 0, 0, 0], 8); // bit depth 8, colour type 0 (greyscale), deflate, no filter set, no interlace
  const signature = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
  const parts = [signature, chunk("IHDR", header), chunk("IDAT", await zlib(lines)), chunk("IEND", new Uint8Array(0))];
  return new Blob(parts.map((p) => new Uint8Array(p)), { type: "image/png" });
}
