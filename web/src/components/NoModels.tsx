/** The empty state when no worker offers a model: what to do about it, not just that it is empty. */
export function NoModels() {
  return (
    <div className="notice empty-state" role="status" data-testid="no-models">
      <strong>No model is available yet.</strong>
      <p>
        Put a model where the workers look for them (<code>storage.models_dir</code>, <code>./models</code> by default): a
        diffusers folder or a single-file <code>.safetensors</code> checkpoint (SD 1.5 or SDXL). Then it appears here within
        a few seconds.
      </p>
      <p>
        To try the platform without weights, run <code>ablerefusal models make-tiny</code> or start the gateway with{" "}
        <code>ablerefusal serve --demo-if-empty</code>; the tiny demo model makes noise images.
      </p>
    </div>
  );
}
