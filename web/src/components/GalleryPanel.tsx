"use client";
import { useState, type FormEvent } from "react";

import type { GalleryImage } from "@/api/client";
import { fetchZip, GALLERY_PAGE_SIZE, useDeleteJobs, useGallery, type GalleryFilter } from "@/api/queries";

import { AuthImage } from "./AuthImage";
import { Lightbox } from "./Lightbox";
import { ErrorNotice } from "./Notice";

export const NO_FILTER: GalleryFilter = { offset: 0, model: "", q: "" };

const keyOf = (image: GalleryImage) => `${image.job_id}/${image.index}`;

function saveBlob(blob: Blob, name: string) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.click();
  // The click has started the download by the next task; the URL is not needed after that.
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

/**
 * Every image the platform made, newest first, as a grid of the gateway's WebP thumbnails: filter by model,
 * search the prompts, page through, open one large, select several to download as a zip or delete.
 */
export function GalleryPanel(props: {
  filter: GalleryFilter;
  onFilter: (filter: GalleryFilter) => void;
  onReuse: (image: GalleryImage, withSeed: boolean) => void;
  onSendToImage?: (image: GalleryImage) => void;
}) {
  const { filter, onFilter, onReuse, onSendToImage } = props;
  const page = useGallery(filter);
  const deleteJobs = useDeleteJobs();
  const [search, setSearch] = useState(filter.q);
  const [selected, setSelected] = useState<Map<string, GalleryImage>>(new Map());
  const [open, setOpen] = useState<number | null>(null);
  const [zipError, setZipError] = useState<Error | null>(null);
  const [zipping, setZipping] = useState(false);

  const items = page.data?.items ?? [];
  const total = page.data?.total ?? 0;
  const last = Math.min(filter.offset + items.length, total);

  const toggle = (image: GalleryImage) => {
    const next = new Map(selected);
    if (next.has(keyOf(image))) next.delete(keyOf(image));
    else next.set(keyOf(image), image);
    setSelected(next);
  };

  const remove = (images: GalleryImage[]) => {
    const jobs = [...new Set(images.map((i) => i.job_id))];
    // Deleting is per job: a batch's other images go with the one picked, so the question says so.
    if (!window.confirm(`Delete ${jobs.length} job(s) with all their images?`)) return;
    deleteJobs.mutate(jobs, {
      onSuccess: () => {
        setSelected(new Map());
        setOpen(null);
      },
    });
  };

  const downloadZip = async () => {
    setZipError(null);
    setZipping(true);
    try {
      const refs = [...selected.values()].map((i) => ({ job_id: i.job_id, index: i.index }));
      saveBlob(await fetchZip(refs), "ablerefusal-images.zip");
    } catch (err) {
      setZipError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      setZipping(false);
    }
  };

  const submitSearch = (e: FormEvent) => {
    e.preventDefault();
    onFilter({ ...filter, q: search.trim(), offset: 0 });
  };

  return (
    <section className="panel" aria-labelledby="gallery-heading">
      <h2 id="gallery-heading">Gallery</h2>
      <div className="toolbar gallery-toolbar">
        <label htmlFor="gallery-model">Model</label>
        <select id="gallery-model" value={filter.model} onChange={(e) => onFilter({ ...filter, model: e.target.value, offset: 0 })}>
          <option value="">All models</option>
          {(page.data?.models ?? []).map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </select>
        <form role="search" onSubmit={submitSearch} className="gallery-search">
          <label htmlFor="gallery-q" className="visually-hidden">
            Search prompts
          </label>
          <input id="gallery-q" type="search" placeholder="Search prompts" value={search} onChange={(e) => setSearch(e.target.value)} />
          <button type="submit">Search</button>
        </form>
      </div>
      {selected.size > 0 ? (
        <div className="toolbar" role="toolbar" aria-label="Selected images">
          <span data-testid="selected-count">{selected.size} selected</span>
          <button type="button" onClick={downloadZip} disabled={zipping}>
            {zipping ? "Preparing zip…" : "Download zip"}
          </button>
          <button type="button" className="danger" onClick={() => remove([...selected.values()])}>
            Delete selected
          </button>
          <button type="button" onClick={() => setSelected(new Map())}>
            Clear selection
          </button>
        </div>
      ) : null}
      <ErrorNotice error={page.error} title="Gallery" />
      <ErrorNotice error={deleteJobs.error} title="Delete" />
      <ErrorNotice error={zipError} title="Download" />
      {page.data && items.length === 0 ? (
        <p className="muted">{filter.model || filter.q ? "No images match." : "No images yet: generate some first."}</p>
      ) : null}
      <ul className="gallery-grid" aria-label="Images">
        {items.map((image, i) => (
          <li key={keyOf(image)} className="gallery-tile" data-testid="gallery-tile">
            <button type="button" className="image-button" onClick={() => setOpen(i)} aria-label={`Open ${image.prompt} (seed ${image.seed})`}>
              <AuthImage src={image.thumb_url} alt={image.prompt} />
            </button>
            <input
              type="checkbox"
              className="gallery-select"
              aria-label={`Select ${image.prompt} (seed ${image.seed})`}
              checked={selected.has(keyOf(image))}
              onChange={() => toggle(image)}
            />
          </li>
        ))}
      </ul>
      {total > 0 ? (
        <nav className="pager" aria-label="Gallery pages">
          <button type="button" disabled={filter.offset === 0} onClick={() => onFilter({ ...filter, offset: Math.max(0, filter.offset - GALLERY_PAGE_SIZE) })}>
            Newer
          </button>
          <span data-testid="gallery-range">
            {filter.offset + 1}–{last} of {total}
          </span>
          <button type="button" disabled={last >= total} onClick={() => onFilter({ ...filter, offset: filter.offset + GALLERY_PAGE_SIZE })}>
            Older
          </button>
        </nav>
      ) : null}
      <Lightbox
        images={items}
        index={open}
        onIndex={setOpen}
        actions={{
          onReuseSettings: (image) => onReuse(image, false),
          onReuseSeed: (image) => onReuse(image, true),
          onDelete: (image) => remove([image]),
          onSendToImage,
        }}
      />
    </section>
  );
}
