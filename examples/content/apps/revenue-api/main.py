"""Revenue API: daily revenue per region, read from Snowflake on the viewer's behalf."""

from fastapi import FastAPI, Header
from settings import REGIONS

app = FastAPI(title="Revenue API")


@app.get("/regions")
def regions() -> list[str]:
    return list(REGIONS)


@app.get("/revenue/{region}")
def revenue(
    region: str, x_connect_credentials: str | None = Header(default=None)
) -> dict[str, object]:
    # On Connect the Snowflake integration hands over the viewer's token here.
    if region not in REGIONS:
        return {"region": region, "error": "unknown region"}
    return {"region": region, "authorised": x_connect_credentials is not None}
