import { etaSeconds, formatDuration } from "./format";

describe("etaSeconds", () => {
  const started = "2024-01-01T00:00:00Z";
  const t0 = Date.parse(started);
  it("extrapolates the pace of the finished steps", () => {
    expect(etaSeconds({ step: 5, total_steps: 20, started_at: started }, t0 + 10_000)).toBeCloseTo(30);
  });
  it("has no estimate before the first step", () => {
    expect(etaSeconds({ step: 0, total_steps: 20, started_at: started }, t0 + 10_000)).toBeNull();
    expect(etaSeconds({ step: 3, total_steps: 20, started_at: null }, t0)).toBeNull();
  });
  it("formats minutes and seconds", () => {
    expect(formatDuration(75)).toBe("1 min 15 s");
    expect(formatDuration(4.4)).toBe("4 s");
  });
});
