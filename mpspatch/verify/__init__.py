"""The patched tree, the stage runner, the stage kinds and the evidence store."""
