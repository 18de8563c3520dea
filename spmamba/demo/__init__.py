"""SP-Mamba Studio's Gradio demo: handlers are plain functions (``demo.handlers``), the page is ``demo.app``."""
