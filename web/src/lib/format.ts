import type { Job } from "@/api/client";

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${s % 60} s`;
}

/** Seconds left, from the pace of the steps done so far; null until there is a pace to go by. */
export function etaSeconds(job: Pick<Job, "step" | "total_steps" | "started_at">, now: number): number | null {
  if (!job.started_at || job.step <= 0 || job.total_steps <= 0) return null;
  const elapsed = (now - Date.parse(job.started_at)) / 1000;
  if (!(elapsed > 0)) return null;
  return (elapsed / job.step) * (job.total_steps - job.step);
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  return new Date(iso).toLocaleString();
}

export const STATUS_LABEL: Record<Job["status"], string> = {
  queued: "Queued",
  running: "Running",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
  timed_out: "Timed out",
};
