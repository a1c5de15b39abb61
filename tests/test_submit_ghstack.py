"""`mpspatch submit` with `method = "ghstack"`, run through the real `ghstack` program.

What is real: the `ghstack` executable and its code (the dev dependency), git, the upstream clone and the
project (render_project), and the repository ghstack pushes to, a bare git repository standing for
pytorch/pytorch. The tests read the gh/USER/N/{base,head,orig} branches ghstack pushed there.

Declared stand-ins:

- GitHub's API cannot exist on these machines, so `GitHubStandIn` below is a small local HTTPS server
  (Python's http.server on 127.0.0.1, a throwaway self-signed certificate made with `openssl` and trusted
  through SSL_CERT_FILE) that answers the few calls ghstack makes when it opens a new stack and updates it:
  the GraphQL `repository { id isFork defaultBranchRef }` query, and REST `POST /repos/O/R/pulls`,
  `GET /repos/O/R/pulls/N` and `PATCH /repos/O/R/pulls/N`, the way GitHub answers them. Any other call is
  recorded and answered 404, and the test fails on it. ghstack finds it through its own `github_url` setting
  (a `.ghstackrc` named by GHSTACKRC_PATH, with a dummy token and the username `ada`), which makes ghstack
  call `https://{github_url}/api/graphql` and `https://{github_url}/api/v3/...`.
- ghstack reads the repository's owner and name from `origin`'s push URL (`{github_url}/OWNER/NAME`), so the
  bare repository lives at a path that ends in `localhost:PORT/pytorch/pytorch.git`; git treats it as a local
  path.
- `gh` is the stand-in of tests/test_submit.py, first on PATH: after ghstack opened the PRs, `submit` labels
  them (`gh pr edit N --add-label L`, or `@pytorchbot label "L"` comments when FAKE_GH_REFUSE_LABELS=1 makes it
  refuse) and posts the "Changes since vN" comments with it, as with the fork method. That module's recording
  `ghstack` stand-in is removed, so the real one runs.

The tests skip, with the reason, when ghstack or openssl is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from render_project import Project, edit_patch, passing_stages
from test_submit import (
    MPSPATCH,
    RUN_2,
    THREE_PARTS,
    TWO_PARTS,
    Hub,
    land_first_part,
    ready_project,
    render_all,
    split,
)

from mpspatch.commands.submit import submit
from mpspatch.model.submission import LabelOutcome, read_submission

OWNER, NAME = "pytorch", "pytorch"
LABELS = ["module: mps", "release notes: mps"]  # render_project's [render].labels

# The ghstack program: on PATH, else the one installed next to this Python (a venv's bin, not on PATH).
GHSTACK = shutil.which("ghstack") or shutil.which("ghstack", path=str(Path(sys.executable).parent))

pytestmark = [
    pytest.mark.skipif(GHSTACK is None, reason="ghstack is not installed (pip install -e '.[dev]')"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed for the stand-in's certificate"),
]


class GitHubStandIn:
    """The HTTPS stand-in for GitHub's API (see the module docstring): the PRs it opened and every call."""

    def __init__(self, root: Path) -> None:
        self.calls: list[tuple[str, str, dict[str, object]]] = []
        self.unexpected: list[str] = []
        self.prs: dict[int, dict[str, object]] = {}
        self.next = 180000
        cert, key = root / "cert.pem", root / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key),
                        "-out", str(cert)], check=True, capture_output=True)
        self.cert = cert
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self, status: int, payload: object) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict[str, object]:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}") if length else {}

            def do_POST(self) -> None:
                stand_in.handle(self, "POST", self._body())

            def do_PATCH(self) -> None:
                stand_in.handle(self, "PATCH", self._body())

            def do_GET(self) -> None:
                stand_in.handle(self, "GET", {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"localhost:{self.port}"

    def pr_url(self, number: int) -> str:
        return f"https://{self.host}/{OWNER}/{NAME}/pull/{number}"

    def _pr_json(self, number: int) -> dict[str, object]:
        pr = self.prs[number]
        return {"number": number, "html_url": self.pr_url(number), "state": "open", "title": pr["title"],
                "body": pr["body"], "draft": pr["draft"], "head": {"ref": pr["head"]},
                "base": {"ref": pr["base"]}, "user": {"login": "ada"}, "merged": False}

    def handle(self, h: BaseHTTPRequestHandler, method: str, body: dict[str, object]) -> None:
        answer = h._answer  # type: ignore[attr-defined]
        self.calls.append((method, h.path, body))
        prefix = f"/api/v3/repos/{OWNER}/{NAME}/pulls"
        if method == "POST" and h.path == "/api/graphql":
            query = str(body.get("query", ""))
            if "repository(" in query and "defaultBranchRef" in query:
                answer(200, {"data": {"repository": {"id": "R_kgDOstandin", "isFork": False,
                                                     "defaultBranchRef": {"name": "main"}}}})
                return
        elif method == "POST" and h.path == prefix:
            self.next += 1
            self.prs[self.next] = {"title": body["title"], "body": body["body"], "head": body["head"],
                                   "base": body["base"], "draft": bool(body.get("draft"))}
            answer(201, self._pr_json(self.next))
            return
        elif h.path.startswith(prefix + "/") and h.path[len(prefix) + 1:].isdigit():
            number = int(h.path[len(prefix) + 1:])
            if number in self.prs and method in ("GET", "PATCH"):
                self.prs[number].update({k: v for k, v in body.items() if k in ("title", "body", "base")})
                answer(200, self._pr_json(number))
                return
        self.unexpected.append(f"{method} {h.path} {json.dumps(body)[:300]}")
        answer(404, {"message": "Not Found (the stand-in does not answer this call)"})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="hub")
def hub_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Hub:
    """test_submit's gh stand-in first on PATH, without its recording ghstack: here the real ghstack runs."""
    made = Hub(tmp_path / "hub")
    (made.bin / "ghstack").unlink()
    monkeypatch.setenv("PATH", f"{made.bin}{os.pathsep}{os.environ['PATH']}")
    return made


@pytest.fixture
def github(tmp_path: Path, hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubStandIn]:
    (tmp_path / "api").mkdir()
    server = GitHubStandIn(tmp_path / "api")
    rc = tmp_path / "api" / "ghstackrc"
    rc.write_text(f"[ghstack]\ngithub_url = {server.host}\ngithub_oauth = stand-in-token\n"
                  "github_username = ada\n")
    monkeypatch.setenv("GHSTACKRC_PATH", str(rc))
    monkeypatch.setenv("SSL_CERT_FILE", str(server.cert))
    monkeypatch.delenv("OAUTH_TOKEN", raising=False)
    assert GHSTACK is not None
    monkeypatch.setenv("PATH", f"{os.environ['PATH']}{os.pathsep}{Path(GHSTACK).parent}")
    yield server
    server.close()


def upstream_repo(hub: Hub, github: GitHubStandIn) -> Path:
    """The bare repository standing for pytorch/pytorch, at a path ghstack reads OWNER/NAME from."""
    bare = hub.root / github.host / OWNER / f"{NAME}.git"
    bare.parent.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    return bare


def ghstack_project(tmp_path: Path, hub: Hub, bare: Path, *, max_lines: int = THREE_PARTS, parts: int = 3) -> Project:
    project = ready_project(tmp_path, hub, max_lines=max_lines, extra='method = "ghstack"\n')
    text = project.config_path.read_text()
    text = text.replace('url = "https://example.invalid/pytorch.git"', f'url = "{bare}"')
    project.config_path.write_text(text.replace("[render]\n", "[render]\nissue = 170001\n"))
    assert len(split(project).stack.parts) == parts
    render_all(project, parts=parts)
    return project


def refs(bare: Path) -> dict[str, str]:
    out = subprocess.run(["git", "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads"],
                         cwd=bare, capture_output=True, text=True, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def test_real_ghstack_submits_the_stack_from_a_shadow_worktree_and_the_prs_are_recorded(
        tmp_path: Path, hub: Hub, github: GitHubStandIn) -> None:
    bare = upstream_repo(hub, github)
    project = ghstack_project(tmp_path, hub, bare)
    parts = split(project).stack.parts

    # --dry-run: the exact command and the commit messages ghstack would get; nothing runs, nothing is pushed.
    plan = submit(project.config(), dry_run=True)
    assert plan.steps[0].command == "ghstack submit --base main"
    # Then, per part, each label as the fork method asks for it: `gh pr edit`, else the bot comment.
    assert [s.command for s in plan.steps[1:]] == [
        command for k in (1, 2, 3) for label in LABELS for command in (
            f"gh pr edit '<PR of part {k}>' --repo pytorch/pytorch --add-label '{label}'",
            f"gh pr comment '<PR of part {k}>' --repo pytorch/pytorch --body '@pytorchbot label \"{label}\"'")]
    for part, planned in zip(parts, plan.parts, strict=True):
        body = (project.root / f"audit/pr_description.part-{part.index:02d}.md").read_text()
        assert planned.message.strip() == f"[MPS] {part.title} ({part.index}/3)\n\n{body.strip()}"
    shown = subprocess.run([*MPSPATCH, "submit", "--dry-run"], cwd=project.root, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "$ ghstack submit --base main" in shown.stdout
    assert f"[MPS] {parts[0].title} (1/3)" in shown.stdout and "Commit message of part 1" in shown.stdout
    assert github.calls == [] and refs(bare) == {} and hub.calls() == []

    # The real run: ghstack pushes gh/ada/N/{base,head,orig} and opens one PR per part through the API.
    done = submit(project.config())
    assert github.unexpected == []
    opened = [b for m, p, b in github.calls if m == "POST" and p.endswith("/pulls")]
    assert [b["title"] for b in opened] == [f"[MPS] {p.title} ({p.index}/3)" for p in parts]
    assert [(b["head"], b["base"]) for b in opened] == [(f"gh/ada/{k}/head", f"gh/ada/{k}/base") for k in (1, 2, 3)]
    pushed = refs(bare)
    assert {f"gh/ada/{k}/{kind}" for k in (1, 2, 3) for kind in ("base", "head", "orig")} <= set(pushed)
    base = project.upstream.git("rev-parse", "v1.0^{commit}").strip()
    for k, part in enumerate(parts, start=1):
        tree = subprocess.run(["git", "rev-parse", f"gh/ada/{k}/head^{{tree}}"], cwd=bare, capture_output=True,
                              text=True, check=True).stdout.strip()
        assert tree == part.tree, f"gh/ada/{k}/head holds parts 1..{k}"
    assert subprocess.run(["git", "merge-base", "--is-ancestor", base, "gh/ada/1/base"], cwd=bare).returncode == 0

    # Recorded: the commits ghstack rewrote (its trailers name each PR), the PR numbers and URLs.
    numbers = sorted(github.prs)
    assert [p.pr for p in done.parts] == numbers
    assert [p.url for p in done.parts] == [github.pr_url(n) for n in numbers]
    assert all(f"Pull-Request: {github.pr_url(n)}" in p.message for n, p in zip(numbers, done.parts, strict=True))
    assert pushed["gh/ada/3/orig"] == done.parts[-1].commit
    record = read_submission(project.config())
    assert record is not None and record.latest is not None and record.latest.name == "v1"
    assert [p.pr for p in record.latest.parts] == numbers
    status = subprocess.run([*MPSPATCH, "status", "--json"], cwd=project.root, capture_output=True, text=True)
    assert [p["pr"] for p in json.loads(status.stdout)["submission"]["parts"]] == numbers
    # Labels: each PR ghstack opened gets the configured labels with gh, after ghstack ran, and they are recorded.
    assert [(a[2], a[a.index("--add-label") + 1]) for a in hub.argvs("pr", "edit")] == [
        (str(n), label) for n in numbers for label in LABELS]
    assert all([(lb.name, lb.outcome) for lb in p.labels] == [(label, LabelOutcome.APPLIED) for label in LABELS]
               for p in (*done.parts, *record.latest.parts))
    assert not hub.argvs("pr", "comment")
    # The user's clone has no ghstack remote or branch: everything happened in the shadow's worktree.
    assert project.upstream.git("remote").strip() == ""
    assert "gh/" not in project.upstream.git("branch", "--list")

    # A change, then submit again: the same three PRs are updated in place, none is opened again (v2).
    edit_patch(project)
    project.relock()
    project.write_evidence(RUN_2, passing_stages())
    split(project)
    render_all(project, parts=3)
    again = submit(project.config())
    assert github.unexpected == []
    # --update-fields: each PR's title and body become the re-rendered part description, as with the fork method.
    assert again.steps[0].command == "ghstack submit --base main --update-fields"
    for number, part in zip(numbers, parts, strict=True):
        body = (project.root / f"audit/pr_description.part-{part.index:02d}.md").read_text()
        marker = next(line for line in body.splitlines() if line.startswith("<!-- series sha256"))
        assert marker in str(github.prs[number]["body"])
    assert sorted(github.prs) == numbers, "a re-submission never opens a second PR"
    assert [p.pr for p in again.parts] == numbers and again.version == "v2"
    assert refs(bare)["gh/ada/3/orig"] == again.parts[-1].commit != done.parts[-1].commit
    # Labels applied before are not asked for again, and are still recorded as applied.
    assert len(hub.argvs("pr", "edit")) == len(numbers) * len(LABELS)
    assert all([lb.name for lb in p.labels] == LABELS for p in again.parts)


def test_real_ghstack_labels_refused_become_pytorchbot_comments_and_are_never_claimed_applied(
        tmp_path: Path, hub: Hub, github: GitHubStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GH_REFUSE_LABELS", "1")
    bare = upstream_repo(hub, github)
    project = ghstack_project(tmp_path, hub, bare, max_lines=2000, parts=1)
    done = submit(project.config())
    assert github.unexpected == []
    [number] = sorted(github.prs)
    assert [(a[2], a[a.index("--add-label") + 1]) for a in hub.argvs("pr", "edit")] == [
        (str(number), label) for label in LABELS]
    comments = [(a[2], a[a.index("--body") + 1]) for a in hub.argvs("pr", "comment")]
    assert comments == [(str(number), f'@pytorchbot label "{label}"') for label in LABELS]
    record = read_submission(project.config())
    assert record is not None and record.latest is not None
    for part in (done.parts[0], record.latest.parts[0]):
        assert [(lb.name, lb.outcome) for lb in part.labels] == [(label, LabelOutcome.REQUESTED) for label in LABELS]
    assert any("asked @pytorchbot" in n for n in done.notes)
    assert not any("labels: its `label` setting" in n for n in done.notes)
    # A second run asks again for nothing.
    before = len(hub.calls())
    submit(project.config())
    assert not [c for c in hub.calls()[before:] if "--add-label" in c["argv"] or c["argv"][:2] == ["pr", "comment"]]


def test_real_ghstack_a_part_that_landed_upstream_is_reported_and_dropped_from_the_stack(
        tmp_path: Path, hub: Hub, github: GitHubStandIn) -> None:
    bare = upstream_repo(hub, github)
    project = ghstack_project(tmp_path, hub, bare, max_lines=TWO_PARTS, parts=2)
    stacked = split(project)
    first = submit(project.config())
    prs = [p.pr for p in first.parts]
    assert prs == sorted(github.prs)
    stack_files = sorted((project.root / "patches/stack").glob("*.patch"))

    # A maintainer lands PR 1; the series is rebased onto that commit and split again into the one part left.
    landed_sha = land_first_part(project, stack_files, stacked.stack.parts[0].title, prs[0])
    [left] = split(project).stack.parts
    render_all(project, parts=1)
    second = submit(project.config())
    assert github.unexpected == []

    # Part 1 is reported as landed and dropped; part 2 goes on as the new part 1: its commit carries PR 2's
    # trailer, so ghstack updates PR 2 in place and opens nothing.
    assert [(p.index, p.pr, p.upstream) for p in second.landed] == [(1, prs[0], landed_sha)]
    assert any(f"landed upstream as {landed_sha[:12]} by PR #{prs[0]}" in n for n in second.notes)
    assert sorted(github.prs) == prs, "no PR is opened again, none is sent to the landed one"
    assert [p.pr for p in second.parts] == [prs[1]] and not second.stale
    assert f"Pull-Request: {github.pr_url(prs[1])}" in second.parts[0].message
    assert second.steps[0].command == "ghstack submit --base main --update-fields"
    assert github.prs[prs[1]]["title"] == f"[MPS] {left.title} (1/1)"
    head = subprocess.run(["git", "rev-parse", "gh/ada/2/head^{tree}"], cwd=bare, capture_output=True, text=True,
                          check=True).stdout.strip()
    assert head == left.tree
    assert subprocess.run(["git", "merge-base", "--is-ancestor", landed_sha, "gh/ada/2/orig"],
                          cwd=bare).returncode == 0
    status = json.loads(subprocess.run([*MPSPATCH, "status", "--json"], cwd=project.root, capture_output=True,
                                       text=True).stdout)["submission"]
    assert [p["pr"] for p in status["landed"]] == [prs[0]] and [p["pr"] for p in status["parts"]] == prs[1:]

    # Submitting again finds nothing new that landed, and keeps the record of what did.
    third = submit(project.config())
    assert not third.landed and third.version == second.version
    record = read_submission(project.config())
    assert record is not None and [p.pr for p in record.landed] == [prs[0]]


def test_real_ghstack_resubmission_tells_each_pr_what_changed_since_the_last_version(
        tmp_path: Path, hub: Hub, github: GitHubStandIn) -> None:
    bare = upstream_repo(hub, github)
    project = ghstack_project(tmp_path, hub, bare)
    parts = split(project).stack.parts
    done = submit(project.config())
    numbers = [p.pr for p in done.parts]
    assert not hub.argvs("pr", "comment"), "a first submission has nothing to compare with"
    edit_patch(project)
    project.relock()
    project.write_evidence(RUN_2, passing_stages())
    split(project)
    render_all(project, parts=3)
    plan = submit(project.config(), dry_run=True)
    assert [s.command for s in plan.steps if s.command.startswith("gh pr comment")] == [
        f"gh pr comment {n} --repo pytorch/pytorch --body-file "
        f"{project.config().state_dir / 'submit' / f'changes.part-{k:02d}.md'}" for k, n in enumerate(numbers, 1)]
    again = submit(project.config())
    assert again.version == "v2" and github.unexpected == []
    # Each PR ghstack updated gets the "Changes since v1" comment: the range-diff per patch, by the parts' diffs
    # (ghstack's own trailers and the re-rendered bodies do not make an unchanged part look changed).
    comments = [(c["argv"][2], str(c["body"])) for c in hub.calls() if c["argv"][:2] == ["pr", "comment"]]
    assert [n for n, _ in comments] == [str(n) for n in numbers]
    for k, (_, note) in enumerate(comments, start=1):
        assert note.startswith("Changes since v1 (`git range-diff`, per commit):")
        lines = [line for line in note.splitlines() if line.startswith("- ")]
        assert len(lines) == k, f"PR {k} sits on parts 1..{k}"
        assert lines == [f"- {j} -> {j} {'changed' if j == 1 else 'unchanged'}: [MPS] {parts[j - 1].title} ({j}/3)"
                         for j in range(1, k + 1)], "edit_patch changed the Python bindings, in part 1 only"

