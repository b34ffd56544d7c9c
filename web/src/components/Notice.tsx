import type { ApiFailure } from "@/api/client";

/** A failure said plainly, announced to screen readers; field errors are shown at their fields instead. */
export function ErrorNotice({ error, title }: { error: ApiFailure | Error | null; title?: string }) {
  if (!error) return null;
  return (
    <div className="notice notice-error" role="alert">
      {title ? <strong>{title}: </strong> : null}
      {error.message}
    </div>
  );
}
