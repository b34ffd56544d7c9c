"""The worker's diffusers engine. Modules that do not need torch (samplers table, detection) import cheaply."""
