"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against the real
service: uvicorn, a Celery worker, PostgreSQL and Redis. The browser test skips only where no
Chromium is installed; `make test` installs it where it can (CI does)."""

from __future__ import annotations

import copy
import os
import re
import shutil
import tarfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from db import schedules
from db.engine import sessionmaker_for
from db.models import Job
from service_fixtures import BODY, SLOW, Receiver, Service, alembic, postgres_database

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

CHROMIUM = os.environ.get("TOPIARY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
# the flags a locked-down, offline machine needs (no sandbox as root, no background network)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def service(tmp_path_factory, model_root):
    with postgres_database() as url:
        alembic(url, "upgrade", "head")
        svc = Service(tmp_path_factory.mktemp("dash"), url, "redis://127.0.0.1:6379/14", model_root,
                      TOPIARY_WEBHOOK_ALLOWED_NETWORKS='["127.0.0.0/8"]')
        try:
            svc.register("tiny", path=str(model_root / "tiny"))
            svc.register("deeper", path=str(model_root / "deeper"))
            svc.start_worker()
            yield svc
        finally:
            svc.close()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, service):
    context = browser.new_context()
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(f"{service.http.base_url}/")  # redirects to /dashboard/
    pg.fill("#key", service.http.headers["Authorization"].split(" ", 1)[1])
    pg.click("#key-form button")
    yield pg
    context.close()
    assert errors == []  # no uncaught script error on the way


def open_form(page, method: str) -> None:
    """The new-job form with the tiny model and `method` chosen (the form defaults to alps)."""
    page.click("#new-job-button")
    page.wait_for_selector("#job-form select[name=model] option[value=tiny]", state="attached")
    page.select_option("#job-form select[name=model]", "tiny")
    page.select_option("#job-form select[name=method]", method)


def test_submit_follow_and_read_the_report(page, service):
    open_form(page, "wanda")  # the form defaults to alps
    page.fill("#job-form input[name=sparsity]", "0.5")
    page.fill("#job-form input[name=nsamples]", str(BODY["calibration"]["nsamples"]))
    page.fill("#job-form input[name=seqlen]", str(BODY["calibration"]["seqlen"]))
    page.fill("#job-form input[name=limit]", "2")
    page.select_option("#job-form select[name=tasks]", ["piqa", "winogrande"])
    page.fill("#job-form input[name=task_limit]", "3")
    page.click("#job-form button[type=submit]")
    page.wait_for_selector("#detail:not([hidden])")
    expect(page.locator("#detail-title")).to_have_text(re.compile(r"^pj_"))  # named as soon as it shows
    job_id = page.text_content("#detail-title")
    page.locator("#perplexity tbody tr").first.wait_for(timeout=180_000)
    job = service.job(job_id)  # what the page shows is what the API says
    assert job["status"] == "succeeded" and job["spec"]["method"] == "wanda"
    cells = page.locator("#perplexity tbody tr").first.locator("td").all_text_contents()
    assert cells[0] == "wikitext2" and float(cells[2]) == pytest.approx(job["result"]["perplexity"]["wikitext2"]["pruned"], abs=0.01)
    zs = job["result"]["zero_shot"]
    rows = [r.locator("td").all_text_contents() for r in page.locator("#zeroshot tbody tr").all()]
    assert [(r[0], r[1], r[5]) for r in rows] == [("piqa", "acc_norm", "3"), ("winogrande", "acc", "3")]
    assert float(rows[0][3]) == pytest.approx(zs["piqa"]["pruned"]["acc_norm"], abs=1e-3)
    assert float(rows[1][2]) == pytest.approx(zs["winogrande"]["dense"]["acc"], abs=1e-3)
    assert page.locator("#layers tbody tr").count() == 14  # 2 blocks × 7 linear layers
    names = page.locator("#artifacts tbody tr td:first-child").all_text_contents()
    assert "report.json" in names and "masks.safetensors" in names
    with page.expect_download() as fetched:  # "download all": the job's archive, every file in one tar
        page.click("#download-all")
    assert fetched.value.suggested_filename == f"{job_id}.tar"
    assert "/artifacts/archive?link=" in fetched.value.url  # streamed by the browser from a signed link, no blob
    with tarfile.open(fetched.value.path()) as tar:
        assert sorted(tar.getnames()) == sorted(names)
    assert page.locator(f"#jobs tbody tr[data-id='{job_id}'] .status").text_content() == "succeeded"


def test_a_profile_from_the_form_shows_each_layers_target(page, service):
    """OWL with a rule, chosen in the form; the report view lists every layer's target and
    achieved sparsity, and the summary names the profile with its knobs."""
    open_form(page, "wanda")
    page.fill("#job-form input[name=sparsity]", "0.6")
    page.select_option("#job-form select[name=profile]", "owl")
    page.fill("#job-form input[name=owl_lambda]", "0.1")
    page.fill("#job-form textarea[name=rules]", "layers\\.1\\.mlp\\.up_proj=0")
    page.fill("#job-form input[name=nsamples]", str(BODY["calibration"]["nsamples"]))
    page.fill("#job-form input[name=seqlen]", str(BODY["calibration"]["seqlen"]))
    page.fill("#job-form input[name=limit]", "2")
    page.click("#job-form button[type=submit]")
    page.wait_for_selector("#detail:not([hidden])")
    expect(page.locator("#detail-title")).to_have_text(re.compile(r"^pj_"))
    job_id = page.text_content("#detail-title")
    page.locator("#perplexity tbody tr").first.wait_for(timeout=180_000)
    job = service.job(job_id)
    assert job["spec"]["sparsity_profile"] == {"kind": "owl", "owl_m": 5.0, "owl_lambda": 0.1,
                                               "rules": [{"match": r"layers\.1\.mlp\.up_proj", "sparsity": 0.0}]}
    expect(page.locator("#summary")).to_contain_text(r"owl (M 5, λ 0.1), 1 rule: layers\.1\.mlp\.up_proj=0")
    rows = [r.locator("td").all_text_contents() for r in page.locator("#layers tbody tr").all()]
    by_name = {layer["name"]: layer for layer in service.http.get(f"/v1/jobs/{job_id}/report").json()["layers"]}
    assert len(rows) == 14
    for cells in rows:
        layer = by_name[cells[1]]
        assert float(cells[2]) == pytest.approx(layer["target"], abs=1e-4)
        assert float(cells[3]) == pytest.approx(layer["sparsity"], abs=1e-4)
    assert next(r for r in rows if r[1] == "model.layers.1.mlp.up_proj")[3] == "0.0000"
    expect(page.locator("#zeroshot-box")).to_be_hidden()  # no task ran: no empty zero-shot table
    took = job["result"]["seconds_total"]
    expect(page.locator("#summary")).to_contain_text(f"took{round(took)} s" if took < 89.5 else "min")


def test_a_page_without_a_key_says_how_to_get_one(browser, service):
    context = browser.new_context()
    pg = context.new_page()
    pg.goto(f"{service.http.base_url}/dashboard/")
    expect(pg.locator("#key-hint")).to_be_visible()
    expect(pg.locator("#key-hint")).to_contain_text("topiary keys create")
    pg.fill("#key", service.http.headers["Authorization"].split(" ", 1)[1])
    pg.click("#key-form button")
    expect(pg.locator("#key-hint")).to_be_hidden()
    context.close()


BAD_FORMS = [  # (fields to fill, what the error next to the form must name)
    ({"input[name=pattern]": "5:4"}, "pattern"),
    ({"textarea[name=rules]": "no_such_layer=0"}, "sparsity_profile.rules[0].match"),
    ({"input[name=sweep]": "0.5, 1.5"}, "sweep[1]: must be a number in [0, 1)"),
    ({"input[name=dense_target]": "0.3"}, "dense_target: method wanda reconstructs nothing"),
]


@pytest.mark.parametrize("fields, needle", BAD_FORMS)
def test_bad_input_is_shown_next_to_the_form(page, fields, needle):
    open_form(page, "wanda")
    for selector, value in fields.items():
        page.fill(f"#job-form {selector}", value)
    page.click("#job-form button[type=submit]")
    page.wait_for_selector("#form-errors:not([hidden])")
    assert needle in page.text_content("#form-errors")


def test_live_layers_then_cancel(page, service):
    job_id = service.submit("deeper", SLOW)
    page.wait_for_selector(f"#jobs tbody tr[data-id='{job_id}']", timeout=10_000)  # the list refreshes itself
    page.click(f"#jobs tbody tr[data-id='{job_id}']")
    page.locator("#layers tbody tr").nth(1).wait_for(timeout=120_000)  # layers arrive live
    assert "layer" in page.text_content("#progress-text")
    page.click("#cancel")
    expect(page.locator("#summary")).to_contain_text("cancelled", timeout=60_000)
    assert service.job(job_id)["status"] == "cancelled"
    assert page.is_visible("#delete") and not page.is_visible("#cancel")
    page.once("dialog", lambda dialog: dialog.dismiss())  # deleting asks first; "no" keeps the job
    page.click("#delete")
    assert service.http.get(f"/v1/jobs/{job_id}").status_code == 200 and page.is_visible("#detail")
    page.once("dialog", lambda dialog: (dialog.message.startswith(f"Delete {job_id}") and dialog.accept()))
    page.click("#delete")
    expect(page.locator("#detail")).to_be_hidden()
    assert service.http.get(f"/v1/jobs/{job_id}").status_code == 404


def test_method_options_come_from_the_registry_and_are_checked(page):
    """The form lists the served methods and each one's declared options; a bad option value is
    answered next to the form, naming the option."""
    from pruning_core.spec import DECLARED

    page.click("#new-job-button")
    page.wait_for_selector("#job-form select[name=model] option[value=tiny]", state="attached")
    methods = page.locator("#job-form select[name=method] option").all_text_contents()
    assert methods == list(DECLARED)
    page.select_option("#job-form select[name=method]", "sparsegpt")
    shown = [n.split(":", 1)[1] for n in page.locator("#method-options [name^='option:']").evaluate_all(
        "nodes => nodes.map(n => n.name)")]
    assert shown == [o.name for o in DECLARED["sparsegpt"].options]
    assert page.get_attribute("#method-options input[name='option:percdamp']", "min") == "0"  # the browser checks it
    page.select_option("#job-form select[name=method]", "alps")
    page.fill("#method-options input[name='option:rho0']", "0")  # 0 < rho0: an open bound, left to the API
    page.click("#job-form button[type=submit]")
    page.wait_for_selector("#form-errors:not([hidden])")
    assert "options.rho0" in page.text_content("#form-errors")


def test_schedules_pause_and_show_their_jobs(page, service):
    body = {"name": "nightly-tiny", "cron": "0 2 * * *", "timezone": "Europe/Berlin", "job": {**BODY, "model": "tiny"}}
    r = service.http.post("/v1/schedules", json=body)
    assert r.status_code == 201, r.text
    sch = r.json()
    # fire its next slot now, as a supervisor would when the night comes
    with sessionmaker_for(service.env["TOPIARY_DATABASE_URL"])() as s:
        fired = schedules.fire_due(s, now=datetime.fromisoformat(sch["next_fire_at"]) + timedelta(seconds=1))
    assert len(fired) == 1
    other = service.submit("tiny", BODY)  # a job of no schedule
    page.reload()  # the key stays in localStorage
    line = page.locator(f"#schedules tbody tr[data-id='{sch['id']}']")
    expect(line).to_contain_text("0 2 * * * (Europe/Berlin)")
    expect(line).to_contain_text(fired[0])
    expect(page.locator(f"#jobs tbody tr[data-id='{other}']")).to_have_count(1)
    line.get_by_role("button", name="jobs", exact=True).click()
    expect(page.locator("#schedule-filter")).to_contain_text("nightly-tiny")
    expect(page.locator("#jobs tbody tr")).to_have_count(1)  # only the schedule's own job
    assert page.locator("#jobs tbody tr").first.get_attribute("data-id") == fired[0]
    page.click("#schedule-filter button")
    expect(page.locator(f"#jobs tbody tr[data-id='{other}']")).to_have_count(1)
    line.get_by_role("button", name="pause", exact=True).click()
    expect(line.locator("td").nth(3)).to_have_text("paused")
    assert service.http.get(f"/v1/schedules/{sch['id']}").json()["enabled"] is False
    line.get_by_role("button", name="resume", exact=True).click()
    expect(line.get_by_role("button", name="pause", exact=True)).to_have_count(1)
    assert service.http.get(f"/v1/schedules/{sch['id']}").json()["enabled"] is True


def test_webhook_deliveries_show_their_answers_and_retry(page, service):
    receiver = Receiver(fail_first=10**6)  # refuses every message until told otherwise
    hook = service.http.post("/v1/webhook_endpoints", json={"url": receiver.url, "events": ["pruning_job.succeeded"]}).json()
    try:
        job_id = service.submit("tiny", BODY)
        assert service.wait(job_id)["status"] == "succeeded"
        line = page.locator(f"#webhooks tbody tr[data-id='{hook['id']}']")
        expect(line).to_contain_text(receiver.url, timeout=10_000)  # the list refreshes itself
        expect(line.locator("td").nth(2)).to_have_text("active")
        line.get_by_role("button", name="deliveries", exact=True).click()
        [delivery] = [d for d in service.http.get(f"/v1/webhook_endpoints/{hook['id']}/deliveries").json()["data"]
                      if d["payload"]["data"]["object"]["id"] == job_id]
        cells = page.locator(f"#deliveries tbody tr[data-id='{delivery['id']}'] td")
        # the first attempt and the one retry 5 s later are both refused; the next waits 5 minutes
        expect(cells.nth(2)).to_have_text("2", timeout=30_000)
        expect(cells.nth(1)).to_have_text("pending")
        expect(cells.nth(3)).to_have_text("HTTP 500")
        receiver.fail_first = 0
        page.locator(f"#deliveries tbody tr[data-id='{delivery['id']}']").get_by_role("button", name="retry now").click()
        expect(cells.nth(1)).to_have_text("delivered", timeout=20_000)
        expect(cells.nth(2)).to_have_text("3")
        expect(cells.nth(3)).to_have_text("HTTP 204")
        assert [code for headers, _, code in receiver.requests if headers["webhook-id"] == delivery["id"]] == [500, 500, 204]
        line.get_by_role("button", name="pause", exact=True).click()
        expect(line.locator("td").nth(2)).to_have_text("paused")
        assert service.http.get(f"/v1/webhook_endpoints/{hook['id']}").json()["enabled"] is False
    finally:
        service.http.delete(f"/v1/webhook_endpoints/{hook['id']}")
        receiver.server.shutdown()


def test_workers_panel_shows_the_live_worker_to_admins_only(page, service):
    expect(page.locator("#workers-admin")).to_be_visible()  # a jobs:read/write key cannot list workers
    expect(page.locator("#workers tbody tr")).to_have_count(0)
    page.fill("#key", service.key_headers(["admin"])["Authorization"].split(" ", 1)[1])
    page.click("#key-form button")
    (worker,) = service.live_workers(1)
    line = page.locator(f"#workers tbody tr[data-id='{worker['id']}']")
    expect(line).to_contain_text(f"pid {worker['pid']}")
    expect(line.locator("td").nth(1)).to_have_text("cpu")
    expect(line.locator("td").nth(3)).to_have_text("idle")
    expect(page.locator("#workers-admin")).to_be_hidden()


# every visible table's header cells lie inside their panel, and no panel scrolls sideways
NO_COLUMN_CUT = """() => [...document.querySelectorAll('main > section:not([hidden]) table')]
  .filter((t) => t.offsetParent !== null)
  .flatMap((t) => {
    const box = t.closest('section').getBoundingClientRect();
    const cut = [...t.querySelectorAll('th')].filter((th) => th.getBoundingClientRect().right > box.right + 0.5)
      .map((th) => `${t.id}: ${th.textContent}`);
    const section = t.closest('section');
    return section.scrollWidth > section.clientWidth + 1 ? [...cut, `${section.id} scrolls`] : cut;
  })"""


def _plotted(page, chart: str, attr: str, where: str = "") -> list[float]:
    return [float(v) for v in page.locator(f"svg[data-chart='{chart}'] {where}").evaluate_all(
        f"nodes => nodes.map(n => n.getAttribute('{attr}'))")]


def test_a_gated_schedule_shows_each_nights_verdict_charts_and_trend(page, service, tmp_path):
    """Three nights of a schedule with gates: the third, worse than the second, fails its
    regression gate. The schedule's trend marks it; the job view shows the verdict and draws the
    report (every plotted value equal to the report's); nothing is cut at 1280 px."""
    page.set_viewport_size({"width": 1280, "height": 900})
    body = {**BODY, "model": "tiny", "evaluation": {"datasets": ["wikitext2", "ptb"], "limit": 2, "tasks": ["piqa"],
                                                    "task_limit": 3},
            "gates": {"max_ppl_ratio": 1000.0, "max_regression": 0.05}}
    r = service.http.post("/v1/schedules", json={"name": "nightly-gated", "cron": "0 2 * * *", "job": body})
    assert r.status_code == 201, r.text
    sch, seen = r.json(), set()
    nights = [service.fire(sch["id"], seen), service.fire(sch["id"], seen)]
    with sessionmaker_for(service.env["TOPIARY_DATABASE_URL"])() as s:  # the second night shipped 10% better
        row = s.get(Job, nights[1]["id"])
        result = copy.deepcopy(row.result)
        result["perplexity"]["wikitext2"]["pruned"] /= 1.1
        row.result = result
        s.commit()
    nights.append(service.fire(sch["id"], seen))
    assert [n["status"] for n in nights] == ["succeeded", "succeeded", "gate_failed"]
    jobs = {j["id"]: j for j in service.http.get(f"/v1/jobs?schedule_id={sch['id']}").json()["data"]}

    page.reload()
    page.locator(f"#schedules tbody tr[data-id='{sch['id']}']").get_by_role("button", name="jobs", exact=True).click()
    expect(page.locator("svg[data-chart='trend'] circle.point")).to_have_count(6)  # 3 nights x 2 datasets
    for dataset in ("wikitext2", "ptb"):
        plotted = _plotted(page, "trend", "data-y", f"circle.point[data-series='{dataset}']")
        assert plotted == pytest.approx([jobs[n["id"]]["result"]["perplexity"][dataset]["pruned"] for n in nights])
    marked = page.locator("svg[data-chart='trend'] circle.marked").evaluate_all("ns => ns.map(n => n.dataset.label)")
    assert len(marked) == 2 and all(nights[2]["id"] in label for label in marked)
    expect(page.locator(f"#trend-box li[data-id='{nights[2]['id']}']")).to_contain_text("gate failed")
    assert page.evaluate(NO_COLUMN_CUT) == []

    page.locator(f"#jobs tbody tr[data-id='{nights[2]['id']}']").click()
    expect(page.locator("#verdict")).to_have_class(re.compile("failed"))
    expect(page.locator("#verdict li.gate-fail[data-gate='max_regression']")).to_contain_text("wikitext2")
    expect(page.locator("svg[data-chart='layer-error'] circle.point")).to_have_count(14)
    report = service.http.get(f"/v1/jobs/{nights[2]['id']}/report").json()
    assert _plotted(page, "layer-error", "data-y", "circle.point") == pytest.approx([l["rel_error"] for l in report["layers"]])
    assert _plotted(page, "layer-seconds", "data-y", "circle.point") == pytest.approx([l["seconds"] for l in report["layers"]])
    assert _plotted(page, "layer-sparsity", "data-y", "circle.point[data-series='achieved']") == pytest.approx(
        [l["sparsity"] for l in report["layers"]])
    assert _plotted(page, "perplexity", "data-value", "rect.bar[data-series='pruned']") == pytest.approx(
        [report["perplexity"][d]["pruned"] for d in ("wikitext2", "ptb")])
    assert _plotted(page, "zero-shot", "data-value", "rect.bar[data-series='dense']") == pytest.approx(
        [report["zero_shot"]["piqa"]["dense"]["acc_norm"]])
    expect(page.locator("#summary dd[data-detail='time']")).to_contain_text("prune")
    assert page.evaluate(NO_COLUMN_CUT) == []
    # the README's picture of the job view, made by this browser
    shots = Path(os.environ.get("TOPIARY_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "dashboard-job.png"), full_page=True)


def test_a_sweep_draws_its_curve(page, service):
    body = {k: v for k, v in BODY.items() if k != "sparsity"}
    job = service.wait(service.submit("tiny", {**body, "sweep": [0.3, 0.6, "2:4"]}))
    assert job["status"] == "succeeded", job
    page.reload()
    page.locator(f"#jobs tbody tr[data-id='{job['id']}']").click()
    expect(page.locator("svg[data-chart='sweep'] circle.point")).to_have_count(3)
    points = job["result"]["sweep"]
    assert _plotted(page, "sweep", "data-x", "circle.point") == pytest.approx([p["sparsity_achieved"] for p in points])
    assert _plotted(page, "sweep", "data-y", "circle.point") == pytest.approx(
        [p["perplexity"]["wikitext2"]["pruned"] for p in points])
    rows = page.locator("#sweep tbody tr")
    expect(rows).to_have_count(3)
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.setting)") == ["0.3", "0.6", "2:4"]
    expect(rows.nth(2)).to_contain_text("points/2-of-4/model")
    expect(page.locator(f"#jobs tbody tr[data-id='{job['id']}']")).to_contain_text("sweep 0.3, 0.6, 2:4")


def test_compare_two_jobs_side_by_side(page, service):
    a = service.wait(service.submit("tiny", BODY))
    b = service.wait(service.submit("tiny", {**BODY, "method": "sparsegpt", "sparsity": 0.6}))
    assert a["status"] == b["status"] == "succeeded"
    api = service.http.get(f"/v1/jobs/compare?ids={a['id']},{b['id']}").json()["data"]
    assert [r["id"] for r in api] == [a["id"], b["id"]] and [r["method"] for r in api] == ["wanda", "sparsegpt"]
    assert api[1]["perplexity"]["wikitext2"]["pruned"] == b["result"]["perplexity"]["wikitext2"]["pruned"]
    assert service.http.get(f"/v1/jobs/compare?ids={a['id']}").status_code == 422  # one job is no comparison
    assert service.http.get(f"/v1/jobs/compare?ids={a['id']},pj_missing").status_code == 404

    page.reload()
    for job in (a, b):
        page.locator(f"#jobs tbody tr[data-id='{job['id']}'] input[type=checkbox]").check()
    page.click("#compare-button")
    expect(page.locator("#compare")).to_be_visible()
    heads = page.locator("#compare-table thead th").all_text_contents()
    assert heads == ["", a["id"], b["id"]]
    method = page.locator("#compare-table tbody tr[data-line='method'] td").all_text_contents()
    assert method == ["wanda", "sparsegpt"]
    assert page.locator("#compare-table tbody tr[data-line='target'] td").all_text_contents() == ["50%", "60%"]
    plotted = _plotted(page, "compare-ppl", "data-value", "rect.bar")
    assert plotted == pytest.approx([j["result"]["perplexity"]["wikitext2"]["pruned"] for j in (a, b)])
    assert page.evaluate(NO_COLUMN_CUT) == []


def test_the_form_sends_quantization_dtype_device_seed_and_gates(page, service):
    open_form(page, "wanda")
    expect(page.locator("#quant-fields")).to_be_hidden()  # wanda has no joint quantization
    page.select_option("#job-form select[name=method]", "sparsegpt")
    expect(page.locator("#quant-fields")).to_be_visible()
    page.select_option("#job-form select[name=bits]", "4")
    page.fill("#job-form input[name=group_size]", "16")
    page.select_option("#job-form select[name=dtype]", "float32")
    page.fill("#job-form input[name=device]", "cpu")
    page.fill("#job-form input[name=seed]", "7")
    page.fill("#job-form input[name=nsamples]", "4")
    page.fill("#job-form input[name=seqlen]", "32")
    page.fill("#job-form input[name=limit]", "2")
    page.fill("#job-form input[name=max_ppl_ratio]", "1000")
    page.click("#job-form button[type=submit]")
    page.wait_for_selector("#detail:not([hidden])")
    expect(page.locator("#detail-title")).to_have_text(re.compile(r"^pj_"))
    spec = service.job(page.text_content("#detail-title"))["spec"]
    assert spec["method"] == "sparsegpt" and spec["quantize"] == {"bits": 4, "group_size": 16, "format": "packed"}
    assert (spec["dtype"], spec["device"], spec["calibration"]["seed"]) == ("float32", "cpu", 7)
    assert spec["gates"] == {"max_ppl_ratio": 1000.0}
    expect(page.locator("#summary")).to_contain_text("ppl ratio ≤ 1000")
