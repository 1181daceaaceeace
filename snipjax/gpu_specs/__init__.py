"""GPU target descriptions for compiling without the GPU (snipjax.accelerators); see README.md here."""
