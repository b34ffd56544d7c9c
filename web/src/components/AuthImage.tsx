"use client";
// /outputs needs the API key when keys are configured, and <img> cannot send headers: with a key set, the
// image is fetched with it and shown from a blob URL; without one, the plain URL is used.
import { useEffect, useState } from "react";

import { authHeaders } from "@/api/client";
import { getApiKey } from "@/lib/storage";

export function useImageSrc(url: string): string | null {
  const keyed = getApiKey() !== "";
  const [blobUrl, setBlobUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!keyed) return;
    const controller = new AbortController();
    let created: string | null = null;
    fetch(url, { headers: authHeaders(), signal: controller.signal })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(`${r.status}`))))
      .then((blob) => {
        created = URL.createObjectURL(blob);
        setBlobUrl(created);
      })
      .catch(() => setBlobUrl(null));
    return () => {
      controller.abort();
      if (created) URL.revokeObjectURL(created);
    };
  }, [url, keyed]);
  return keyed ? blobUrl : url;
}

export function AuthImage({ src, alt, className, testId }: { src: string; alt: string; className?: string; testId?: string }) {
  const resolved = useImageSrc(src);
  if (!resolved) return <span className={`img-placeholder ${className ?? ""}`} aria-label={alt} role="img" data-testid={testId} />;
  // eslint-disable-next-line @next/next/no-img-element -- static export: images come straight from /outputs
  return <img src={resolved} alt={alt} className={className} loading="lazy" data-testid={testId} />;
}
