"use client";
import { useEffect, useRef, useState, type KeyboardEvent, type PointerEvent } from "react";

import { BRUSH_MAX, BRUSH_MIN, MaskRaster, overlayPixels, pushOp, rasterize, redo, stepBrush, undo, type MaskHistory, type MaskOp, type Point, type Rect } from "@/lib/mask";

import { AuthImage } from "./AuthImage";

// Translucent magenta: visible on photographs and on the tiny models' grey noise alike.
const OVERLAY_RGBA = [236, 32, 140, 150] as const;

export interface MaskImage {
  url: string;
  width: number;
  height: number;
}

/** Keys a person can press while the editor (the image or one of its tools) has focus; shown in the UI. */
export const MASK_SHORTCUTS: [keys: string, what: string][] = [
  ["[ / ]", "smaller / larger brush"],
  ["B / E", "brush / eraser (E toggles)"],
  ["I", "invert the mask"],
  ["Ctrl+Z / Ctrl+Shift+Z", "undo / redo"],
  ["Arrow keys (on the image)", "move the brush; Shift moves further"],
  ["Space (on the image)", "put the brush down / lift it"],
];

function isTextEntry(target: EventTarget): boolean {
  return target instanceof HTMLTextAreaElement || (target instanceof HTMLInputElement && target.type !== "range" && target.type !== "button");
}

/**
 * Paints the inpainting mask over the image: pointer events (mouse, pen, touch) and the keyboard draw with a
 * round brush or eraser in image pixels; every stroke is one undoable operation. The mask itself is data
 * (lib/mask.ts): this component shows it on a canvas laid over the image and reports each operation.
 */
export function MaskEditor(props: { image: MaskImage; alt: string; history: MaskHistory; onHistory: (history: MaskHistory) => void }) {
  const { image, alt, history, onHistory } = props;
  const { width, height } = image;
  const canvas = useRef<HTMLCanvasElement>(null);
  const raster = useRef<MaskRaster | null>(null);
  // The operations the raster holds, so a committed stroke (already painted) does not replay everything.
  const rasterOps = useRef<readonly MaskOp[]>([]);
  const committed = useRef<MaskOp | null>(null);
  const live = useRef<{ op: Extract<MaskOp, { kind: "stroke" }>; pointer: number | null } | null>(null);
  const [erase, setErase] = useState(false);
  const [size, setSize] = useState(() => Math.max(BRUSH_MIN, Math.round(Math.max(width, height) / 12)));
  const [cursor, setCursor] = useState<{ x: number; y: number; scale: number } | null>(null);
  const [keyPoint, setKeyPoint] = useState<Point>(() => [width / 2, height / 2]);
  const [penDown, setPenDown] = useState(false);
  const [coverage, setCoverage] = useState(0);
  const maxSize = Math.min(BRUSH_MAX, Math.max(width, height));

  const draw = (rect: Rect | null) => {
    const ctx = canvas.current?.getContext("2d");
    if (!ctx || !raster.current || !rect || rect.x1 <= rect.x0 || rect.y1 <= rect.y0) return;
    const pixels = overlayPixels(raster.current, rect, OVERLAY_RGBA);
    ctx.putImageData(new ImageData(pixels, rect.x1 - rect.x0, rect.y1 - rect.y0), rect.x0, rect.y0);
  };

  const measure = () => {
    const data = raster.current?.data;
    if (!data) return;
    let painted = 0;
    for (const v of data) if (v !== 0) painted++;
    setCoverage(painted / data.length);
  };

  // The raster follows the history: a new image or an undo rebuilds it; the stroke just committed is in it.
  useEffect(() => {
    const ops = history.ops;
    const held = rasterOps.current;
    const extendsHeld = raster.current?.width === width && raster.current?.height === height && ops.length === held.length + 1 && held.every((op, i) => op === ops[i]) && ops.at(-1) === committed.current;
    if (!extendsHeld) {
      raster.current = rasterize(width, height, ops);
      draw(raster.current.whole());
    }
    rasterOps.current = ops;
    committed.current = null;
    measure();
  }, [history.ops, width, height]);

  const commit = () => {
    const stroke = live.current;
    live.current = null;
    setPenDown(false);
    if (!stroke) return;
    committed.current = stroke.op;
    onHistory(pushOp(history, stroke.op));
  };

  const record = (op: MaskOp) => onHistory(pushOp(history, op));
  // Undo and redo move through the history itself; not in the middle of a stroke, which would be lost.
  const moveTo = (next: MaskHistory) => {
    if (!live.current) onHistory(next);
  };

  /** Adds a point to the live stroke and paints the segment to it at once. */
  const extend = (point: Point) => {
    const stroke = live.current;
    if (!stroke || !raster.current) return;
    const last = stroke.op.points.at(-1) ?? point;
    stroke.op.points.push(point);
    draw(raster.current.segment(last, point, stroke.op.size / 2, stroke.op.erase ? 0 : 255));
  };

  const begin = (point: Point, pointer: number | null) => {
    live.current = { op: { kind: "stroke", erase, size, points: [] }, pointer };
    extend(point);
  };

  /** A pointer's position in image pixels (the canvas is the image's size, scaled by CSS). */
  const toImage = (e: PointerEvent<HTMLCanvasElement> | globalThis.PointerEvent): { point: Point; scale: number } => {
    const box = canvas.current!.getBoundingClientRect();
    const scale = box.width > 0 ? box.width / width : 1;
    return { point: [(e.clientX - box.left) / scale, (e.clientY - box.top) / scale], scale };
  };

  const onPointerDown = (e: PointerEvent<HTMLCanvasElement>) => {
    if (e.button !== 0 || live.current) return;
    e.preventDefault();
    e.currentTarget.focus();
    e.currentTarget.setPointerCapture?.(e.pointerId);
    const { point, scale } = toImage(e);
    setCursor({ x: point[0], y: point[1], scale });
    begin(point, e.pointerId);
  };

  const onPointerMove = (e: PointerEvent<HTMLCanvasElement>) => {
    const { point, scale } = toImage(e);
    setCursor({ x: point[0], y: point[1], scale });
    if (live.current?.pointer !== e.pointerId) return;
    // A fast stroke delivers several positions per frame; each one counts, or curves become polygons.
    const events = e.nativeEvent.getCoalescedEvents?.() ?? [];
    for (const event of events.length > 0 ? events : [e.nativeEvent]) extend(toImage(event).point);
  };

  const onPointerEnd = (e: PointerEvent<HTMLCanvasElement>) => {
    if (live.current?.pointer === e.pointerId) commit();
  };

  // Painting from the keyboard: the arrows move the brush, Space puts it down and lifts it.
  const onCanvasKey = (e: KeyboardEvent<HTMLCanvasElement>) => {
    const arrows: Partial<Record<string, Point>> = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const arrow = arrows[e.key];
    const scale = canvas.current && canvas.current.getBoundingClientRect().width > 0 ? canvas.current.getBoundingClientRect().width / width : 1;
    if (arrow) {
      e.preventDefault();
      const step = Math.max(1, Math.round(size / 2)) * (e.shiftKey ? 4 : 1);
      const [dx, dy] = arrow;
      const next: Point = [Math.min(width, Math.max(0, keyPoint[0] + dx * step)), Math.min(height, Math.max(0, keyPoint[1] + dy * step))];
      setKeyPoint(next);
      setCursor({ x: next[0], y: next[1], scale });
      if (live.current?.pointer === null) extend(next);
    } else if (e.key === " " || e.key === "Enter") {
      e.preventDefault();
      if (live.current?.pointer === null) commit();
      else if (!live.current) {
        setPenDown(true);
        setCursor({ x: keyPoint[0], y: keyPoint[1], scale });
        begin(keyPoint, null);
      }
    } else if (e.key === "Escape" && live.current?.pointer === null) {
      commit();
    }
  };

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    if (isTextEntry(e.target)) return;
    const ctrl = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    if (ctrl && key === "z") moveTo(e.shiftKey ? redo(history) : undo(history));
    else if (ctrl && key === "y") moveTo(redo(history));
    else if (ctrl || e.altKey) return;
    else if (e.key === "[" || e.key === "]") setSize(Math.min(maxSize, stepBrush(size, e.key === "]")));
    else if (key === "e") setErase(!erase);
    else if (key === "b") setErase(false);
    else if (key === "i") record({ kind: "invert" });
    else return;
    e.preventDefault();
  };

  const percent = Math.round(coverage * 1000) / 10;
  return (
    <div className="mask-editor" onKeyDown={onKeyDown}>
      <div className="mask-tools" role="group" aria-label="Mask tools">
        <button type="button" aria-pressed={!erase} onClick={() => setErase(false)} aria-keyshortcuts="B">
          Brush
        </button>
        <button type="button" aria-pressed={erase} onClick={() => setErase(true)} aria-keyshortcuts="E">
          Eraser
        </button>
        <label className="brush-size" htmlFor="brush-size">
          Brush size
          <input id="brush-size" type="range" min={BRUSH_MIN} max={maxSize} value={Math.min(size, maxSize)} onChange={(e) => setSize(e.target.valueAsNumber)} aria-keyshortcuts="[ ]" aria-valuetext={`${size} pixels`} />
          <output htmlFor="brush-size" data-testid="brush-size-value">
            {size} px
          </output>
        </label>
        <button type="button" onClick={() => moveTo(undo(history))} disabled={history.ops.length === 0} aria-keyshortcuts="Control+Z">
          Undo
        </button>
        <button type="button" onClick={() => moveTo(redo(history))} disabled={history.undone.length === 0} aria-keyshortcuts="Control+Shift+Z">
          Redo
        </button>
        <button type="button" onClick={() => record({ kind: "clear" })} disabled={coverage === 0}>
          Clear mask
        </button>
        <button type="button" onClick={() => record({ kind: "invert" })} aria-keyshortcuts="I">
          Invert mask
        </button>
      </div>
      {/* Sized by the image's known shape, so the canvas has its box before the picture loads (lazily). */}
      <div className="mask-stage" style={{ aspectRatio: `${width} / ${height}` }}>
        <AuthImage src={image.url} alt={alt} className="mask-image" />
        <canvas
          id="mask"
          ref={canvas}
          className={`mask-canvas${erase ? " erasing" : ""}`}
          width={width}
          height={height}
          tabIndex={0}
          role="application"
          aria-roledescription="mask painter"
          aria-label={`Mask over the input image: ${erase ? "eraser" : "brush"}, ${size} px${penDown ? ", brush down" : ""}`}
          aria-describedby="mask-help mask-coverage"
          onPointerDown={onPointerDown}
          onPointerMove={onPointerMove}
          onPointerUp={onPointerEnd}
          onPointerCancel={onPointerEnd}
          onPointerLeave={() => (live.current ? undefined : setCursor(null))}
          onKeyDown={onCanvasKey}
          onBlur={() => {
            if (live.current?.pointer === null) commit();
            setCursor(null);
          }}
          onFocus={() => setCursor((c) => c ?? { x: keyPoint[0], y: keyPoint[1], scale: (canvas.current?.getBoundingClientRect().width || width) / width })}
        />
        {cursor ? (
          <span
            className={`brush-cursor${erase ? " erasing" : ""}${penDown ? " down" : ""}`}
            aria-hidden="true"
            style={{
              left: `${(cursor.x - size / 2) * cursor.scale}px`,
              top: `${(cursor.y - size / 2) * cursor.scale}px`,
              width: `${size * cursor.scale}px`,
              height: `${size * cursor.scale}px`,
            }}
          />
        ) : null}
      </div>
      <p className="hint" id="mask-coverage" role="status" data-testid="mask-coverage">
        {coverage === 0 ? "No mask: the whole image is redrawn by strength." : `Mask covers ${percent} % of the image (white in the mask: repainted).`}
      </p>
      <details className="hint mask-help">
        <summary>Keyboard and touch</summary>
        <div id="mask-help">
          <p>Paint on the image with a mouse, pen or finger. With the image or a mask tool focused:</p>
          <dl className="params">
            {MASK_SHORTCUTS.map(([keys, what]) => (
              <div key={keys} className="param-row">
                <dt>
                  <kbd>{keys}</kbd>
                </dt>
                <dd>{what}</dd>
              </div>
            ))}
          </dl>
        </div>
      </details>
    </div>
  );
}
