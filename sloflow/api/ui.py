"""`/ui`: the runs page, plain static files (HTML, CSS, JavaScript) with no build step.

It reads the API like any client (recent runs, one run's events over SSE, the workers) with the
key given in the page (kept in the browser's localStorage), or none on an open loopback server.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

UI_DIR = Path(__file__).with_name("ui")
router = APIRouter(include_in_schema=False)


@router.get("/ui")
async def runs_page() -> FileResponse:
    """The runs page: recent runs, one run's timeline against its deadline, the workers."""
    return FileResponse(UI_DIR / "index.html", media_type="text/html")


def install_ui(app: FastAPI) -> None:
    """Serve the page at /ui and its files (and the Grafana dashboard JSON) under /ui/."""
    app.include_router(router)
    app.mount("/ui", StaticFiles(directory=UI_DIR), name="ui")
