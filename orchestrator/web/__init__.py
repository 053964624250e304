"""The agent workspace at /app: server-rendered pages (Jinja2) with one small script of our
own for live updates, the streamed draft and keyboard shortcuts. No framework and no build
step: every asset is a file of this folder, so it works offline and a Python team keeps it."""

from orchestrator.web.routes import install

__all__ = ["install"]
