"""`rlhf export report` and the study page's recompute button, on committed data."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.main import app
from judging.data.models import Recommendation
from judging.errors import NotFoundError
from tests.dashboard_helpers import ResearchLab, build_research_lab, summary
from tests.judging_helpers import login


def _verdict(step: int, prompt: int, rater: int) -> str:
    # Step 20 wins 3 of 4 verdicts, step 10 half: step 20 is recommended.
    if step == 20:
        return "reference" if (prompt + rater) % 4 == 0 else "checkpoint"
    return "checkpoint" if (prompt + rater) % 2 else "reference"


def _lab(session: Session, tmp_path: Path) -> ResearchLab:
    return build_research_lab(
        session,
        tmp_path,
        prompts=24,
        summaries={
            0: summary(0.0, 0.0, 12.0, length_growth=1.0),
            10: summary(1.0, 1.0, 14.0, length_growth=1.1),
            20: summary(2.0, 2.0, 15.0, length_growth=1.2),
        },
        verdict=_verdict,
    )


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [f"{tag} {k}={v}" for k, v in attrs if k in ("src", "href")]


def test_rlhf_export_report_markdown_and_html(cli_db: Session, tmp_path: Path) -> None:
    lab = _lab(cli_db, tmp_path)
    cli_db.commit()
    sid = str(lab.study.id)
    runner = CliRunner()
    result = runner.invoke(app, ["export", "report", "--study", sid, "--format", "md"])
    assert result.exit_code == 0, result.output
    markdown = result.output
    # The recommendation was computed on the way (none was stored) and explained in the report.
    assert "**ppo-research@20**" in markdown
    sureness = r"P\(within 0.03 of the best\) (= [01]\.\d\d|> 0\.99); expected regret"
    assert re.search(sureness, markdown)
    assert "| ppo-research@20 | 20 | 48 | 0.750 [" in markdown
    assert "| ppo-research@10 | 20 |" not in markdown
    assert "## Reward and KL (held-out)" in markdown and "## Compute cost per run" in markdown
    assert cli_db.scalar(select(func.count()).select_from(Recommendation)) == 1
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["export", "report", "-s", sid, "-f", "html", "-o", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    refs = _Refs()
    refs.feed(html)
    assert refs.refs == []
    assert "ppo-research@20" in html and "Plotly.newPlot" in html
    # A second export with no new verdicts keeps the stored recommendation (no new row).
    assert runner.invoke(app, ["export", "report", "-s", sid]).exit_code == 0
    assert cli_db.scalar(select(func.count()).select_from(Recommendation)) == 1
    bad = runner.invoke(app, ["export", "report", "-s", sid, "-f", "pdf"])
    assert bad.exit_code != 0 and "must be md or html" in bad.output
    missing = runner.invoke(app, ["export", "report", "-s", "999999"])
    # main() turns a LabError into one line and exit code 1; the runner shows the raw error.
    assert isinstance(missing.exception, NotFoundError)
    assert str(missing.exception) == "study 999999 does not exist"


def test_recompute_button_is_admin_only_and_csrf_checked(
    client: TestClient, db_session: Session, tmp_path: Path
) -> None:
    lab = _lab(db_session, tmp_path)
    url = f"/research/studies/{lab.study.id}/recommendation"
    login(client, lab.rater_token)
    assert client.post(url, data={"csrf_token": "x"}).status_code == 403
    login(client, lab.admin_token)
    page = client.get(f"/research/studies/{lab.study.id}").text
    assert "No recommendation stored" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    assert client.post(url, data={"csrf_token": "wrong"}).status_code == 403
    response = client.post(url, data={"csrf_token": token.group(1)}, follow_redirects=False)
    assert response.status_code == 303
    page = client.get(response.headers["location"]).text
    assert "recomputed" in page and "Recommended:" in page and "ppo-research@20" in page
    assert "P(within 0.03 of the best) " in page
    again = client.post(url, data={"csrf_token": token.group(1)})
    assert "unchanged: no new verdicts since" in again.text
    assert db_session.scalar(select(func.count()).select_from(Recommendation)) == 1
