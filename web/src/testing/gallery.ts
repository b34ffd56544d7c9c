import type { GalleryImage } from "@/api/client";

/** A gallery image as the gateway lists it (image ``index`` of ``job``), for component tests. */
export function galleryImage(job: string, index: number, prompt: string, seed: number): GalleryImage {
  return {
    job_id: job,
    index,
    image_url: `/outputs/${job}/${index}.png`,
    thumb_url: `/api/v1/gallery/${job}/${index}/thumb.webp`,
    seed,
    prompt,
    negative_prompt: "",
    model: "tiny",
    width: 64,
    height: 64,
    steps: 2,
    sampler: "euler_a",
    cfg_scale: 7,
    infotext: `${prompt}\nSeed: ${seed}`,
    created_at: "2024-01-01T00:00:00Z",
  };
}
