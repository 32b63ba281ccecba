"""A client generated from openapi/openapi.json by openapi-python-client,
driven against a running widget-data: query the seeded data, create, list,
update and delete a widget, query it by id, read a typed error, and publish,
approve and load a widget bundle."""

import base64
import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from widget_data_client import AuthenticatedClient
from widget_data_client.api.rest import (
    create_dashboard_widgets,
    delete_dashboard_widgets,
    list_dashboard_widgets,
    list_dashboards,
    update_dashboard_widgets,
)
from widget_data_client.api.widget_bundles import (
    list_widget_bundles,
    register_widget_bundle,
    review_widget_bundle,
)
from widget_data_client.api.widget_data import query_widget_data
from widget_data_client.models import (
    BundleStatus,
    BundleVersion,
    DashboardWidgetInsert,
    DashboardWidgetUpdate,
    DataSource,
    ErrorBody,
    Registration,
    Review,
    WidgetDataRequest,
    WidgetDataResponse,
)


def start(binary, data_dir):
    # Bundles are fetched from this test's own origin on loopback.
    env = dict(
        os.environ,
        DATA_DIR=data_dir,
        LISTEN_ADDR="127.0.0.1:0",
        RUST_LOG="warn",
        BUNDLE_ALLOW_HOSTS="127.0.0.1",
    )
    child = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, text=True)
    out, deadline = "", time.time() + 120
    while time.time() < deadline:
        line = child.stdout.readline()
        if not line:
            raise RuntimeError(f"widget-data exited:\n{out}")
        out += line
        url = re.search(r"listening on (http://\S+)", out)
        demo = re.search(r"^\s+demo user\s+(\S+)$", out, re.M)
        service = re.search(r"^\s+service_role\s+(\S+)$", out, re.M)
        if url and demo and service and "try:" in out:
            return child, url.group(1), demo.group(1), service.group(1)
    raise RuntimeError(f"no banner after 120 s:\n{out}")


def run(url, token):
    client = AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True)

    # The seeded servers, by status.
    reply = query_widget_data.sync_detailed(
        client=client,
        body=WidgetDataRequest(config=DataSource.from_dict(
            {"table": "servers", "aggregation": "count", "groupBy": "status"})),
    )
    assert reply.status_code == 200, reply.content
    assert isinstance(reply.parsed, WidgetDataResponse), reply.parsed
    assert sum(row["value"] for row in (r.to_dict() for r in reply.parsed.data)) == 5000

    boards = list_dashboards.sync(client=client)
    assert boards and len(boards) == 1, boards
    board = boards[0]

    # Create a widget.
    created = create_dashboard_widgets.sync_detailed(
        client=client,
        prefer="return=representation",
        body=[DashboardWidgetInsert.from_dict({
            "dashboard_id": str(board.id),
            "title": "Memory by status",
            "widget_type": "chart",
            "data_source": {"table": "servers", "aggregation": "sum", "column": "memory_mb", "groupBy": "status"},
        })],
    )
    assert created.status_code == 201, created.content
    widget = created.parsed[0]
    assert widget.title == "Memory by status"

    # List it.
    listed = list_dashboard_widgets.sync(client=client, dashboard_id=f"eq.{board.id}")
    assert any(w.id == widget.id for w in listed)

    # Update it.
    updated = update_dashboard_widgets.sync_detailed(
        client=client,
        id=f"eq.{widget.id}",
        prefer="return=representation",
        body=DashboardWidgetUpdate.from_dict({"title": "Memory (MB) by status"}),
    )
    assert updated.status_code == 200, updated.content
    assert updated.parsed[0].title == "Memory (MB) by status"

    # Query it by id.
    by_id = query_widget_data.sync_detailed(client=client, body=WidgetDataRequest(widget_id=widget.id))
    assert by_id.status_code == 200, by_id.content
    assert isinstance(by_id.parsed, WidgetDataResponse)
    assert len(by_id.parsed.data) == 4  # one row per status

    # A typed error.
    bad = query_widget_data.sync_detailed(
        client=client,
        body=WidgetDataRequest(config=DataSource.from_dict({"table": "servers", "groupBy": "no_such_column"})),
    )
    assert bad.status_code == 400
    assert isinstance(bad.parsed, ErrorBody), bad.parsed
    assert bad.parsed.code == "unknown_column"
    assert bad.parsed.details.to_dict() == {"field": "config.groupBy"}

    # Delete it.
    deleted = delete_dashboard_widgets.sync_detailed(client=client, id=f"eq.{widget.id}")
    assert deleted.status_code == 204
    assert list_dashboard_widgets.sync(client=client, id=f"eq.{widget.id}") == []


BUNDLE = b'export function render(el) { el.textContent = "hello from python"; }\n'


class Origin(http.server.BaseHTTPRequestHandler):
    """A widget developer's origin serving one clean bundle."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript")
        self.send_header("Content-Length", str(len(BUNDLE)))
        self.end_headers()
        self.wfile.write(BUNDLE)

    def log_message(self, *args):
        pass


def bundles(url, developer_token, service_token):
    developer = AuthenticatedClient(base_url=url, token=developer_token, raise_on_unexpected_status=True)
    reviewer = AuthenticatedClient(base_url=url, token=service_token, raise_on_unexpected_status=True)
    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    try:
        port = origin.server_address[1]
        registered = register_widget_bundle.sync_detailed(
            client=developer,
            body=Registration(bundle_id="py-ticker", version="1.0.0", url=f"http://127.0.0.1:{port}/bundle"),
        )
        assert registered.status_code == 201, registered.content
        version = registered.parsed
        assert isinstance(version, BundleVersion), version
        assert version.status == BundleStatus.PENDING
        sri = "sha384-" + base64.b64encode(hashlib.sha384(BUNDLE).digest()).decode()
        assert version.integrity == sri
        mine = list_widget_bundles.sync(client=developer)
        assert any(v.bundle_id == "py-ticker" for v in mine)
        approved = review_widget_bundle.sync(
            client=reviewer, bundle_id="py-ticker", version="1.0.0", body=Review(status=BundleStatus.APPROVED)
        )
        assert approved.status == BundleStatus.APPROVED
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, no proxy
        with direct.open(url + version.url) as served:
            assert served.status == 200
            assert served.read() == BUNDLE
            assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    finally:
        origin.shutdown()


def main():
    data_dir = tempfile.mkdtemp(prefix="widget-data-py-")
    os.chmod(data_dir, 0o755)
    binary = os.environ.get("WIDGET_DATA_BIN", "../../../target/debug/widget-data")
    child, url, token, service_token = start(binary, data_dir)
    try:
        run(url, token)
        bundles(url, token, service_token)
        print("Python client (openapi-python-client): ok")
    finally:
        child.terminate()
        child.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
