"""Errors from the environment are one line naming the setting and the fix, exit 2, in seconds: no S3
credentials, an unreachable S3 endpoint, an endpoint that answers 404 (a wrong bucket, or a server that
is not S3), a PREFECT_API_URL where no server answers."""

from __future__ import annotations

import http.server
import socket
import threading
import time

from doodleflow.flows.cli import main


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on return: nothing listens there


def run(capsys, *argv: str) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    code = main(list(argv))
    return code, capsys.readouterr().err.strip(), time.perf_counter() - t0


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_no_s3_credentials(s3_endpoint, monkeypatch, capsys, tmp_path):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, err, secs = run(capsys, "datasets", "--store", "s3://somebucket/prefix")
    assert code == 2 and secs < 10
    assert "no AWS credentials" in one_line(err) and "AWS_ACCESS_KEY_ID" in err


def test_unreachable_s3_endpoint(s3_endpoint, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{dead_port()}")
    code, err, secs = run(capsys, "datasets", "--store", "s3://somebucket")
    assert code == 2 and secs < 10
    assert "cannot reach the S3 endpoint" in one_line(err) and "AWS_ENDPOINT_URL" in err


def test_missing_bucket(s3_endpoint, capsys):
    code, err, _ = run(capsys, "datasets", "--store", "s3://no-such-bucket/x")
    assert code == 2 and "no such bucket" in one_line(err) and "--store" in err


def test_an_endpoint_that_is_not_s3(s3_endpoint, monkeypatch, capsys):
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}")
        code, err, _ = run(capsys, "datasets", "--store", "s3://bucket")
    finally:
        server.shutdown()
    assert code == 2 and "no such bucket" in one_line(err) and "AWS_ENDPOINT_URL" in err


def test_an_existing_bucket_passes(bucket, capsys):
    code, _, _ = run(capsys, "datasets", "--store", bucket)
    assert code == 0


def test_prefect_api_url_at_a_dead_port(monkeypatch, capsys, tmp_path):
    src = tmp_path / "src"  # an OpenImages tree the refresh's own checks accept: the API is what fails
    (src / "images").mkdir(parents=True)
    (src / "class-descriptions-boxable.csv").write_text("/m/01,Thing\n")
    (src / "train-annotations-bbox.csv").write_text("ImageID,LabelName,XMin,XMax,YMin,YMax\n")
    url = f"http://127.0.0.1:{dead_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", url)
    code, err, secs = run(
        capsys, "refresh", "--source", str(src), "--dataset", "d", "--store", str(tmp_path / "s")
    )
    assert code == 2 and secs < 10
    line = one_line(err)
    assert f"PREFECT_API_URL={url}: no Prefect API answers" in line and "prefect server start" in line
