"""`mpspatch submit`: the issue, the branches on the fork, the PRs, labels, versions, --dry-run, refusals.

Declared stand-in: GitHub's API cannot exist on these machines, so each test writes a small `gh` program
(Python, `FAKE_GH` below) into a bin folder put first on PATH. It records every argv (and the text of any
--body-file) as one JSON line in `gh.jsonl`, keeps the issues and PRs it "opened" in `gh-state.json`, and
answers the calls submit makes the way gh does: the new URL on stdout for `issue create` and `pr create`, a JSON
array for `pr list --json`, and, when the test sets FAKE_GH_REFUSE_LABELS=1, the permission error GitHub gives
an outside contributor for `pr edit --add-label`. The ghstack test also puts a stand-in `ghstack` there
(`FAKE_GHSTACK`), which records its argv and the commits (SHA and message) of the checkout it runs in, since the
real ghstack pushes to GitHub: the stand-in replaces only that network step. What ghstack reads of the stack is
ghstack's own code (the `ghstack` package, a dev dependency): the parsing test runs `Submitter.parse_revs`'s
`git rev-list --header` in the checkout mpspatch hands to ghstack and reads it with `ghstack.git.split_header` and
`ghstack.git.convert_header`, and takes each PR's title and body from `Submitter._default_title_and_body`
(`origin/main` there is the ref submit sets in the shadow at the series base); the test skips with the reason
when ghstack is not installed. tests/test_submit_ghstack.py runs the real ghstack program end to end.

Everything else is real: the upstream clone and the project come from render_project (real git, a real patch,
real evidence), the fork is a real bare git repository, and the tests read the branches and SHAs pushed to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
from render_project import Project, edit_patch, make_project, passing_stages
from test_store import REBASE

from mpspatch.commands.render import render
from mpspatch.commands.submit import NotReadyToSubmit, submit
from mpspatch.git.shadow import shadow_path
from mpspatch.model.state import write_state
from mpspatch.model.submission import LabelOutcome, read_submission
from mpspatch.model.workspace import Workspace
from mpspatch.operations.submit import branch_name

if TYPE_CHECKING:
    from mpspatch.operations.split import SplitResult

RUN_1 = "20251216T120000Z-3f9a1c2e"
RUN_2 = "20251219T080000Z-5e1f0a7b"
MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]
REPO = "pytorch/pytorch"

FAKE_GH = r'''#!/usr/bin/env python3
import json, os, sys
from pathlib import Path

here = Path(__file__).resolve().parent.parent
log, state_path = here / "gh.jsonl", here / "gh-state.json"
args = sys.argv[1:]
entry = {"argv": args}
if "--body-file" in args:
    entry["body"] = Path(args[args.index("--body-file") + 1]).read_text()
with log.open("a") as f:
    f.write(json.dumps(entry) + "\n")
state = json.loads(state_path.read_text()) if state_path.exists() else {"next": 170000, "prs": []}

def opt(name):
    return args[args.index(name) + 1]

def save():
    state_path.write_text(json.dumps(state))

if args[:2] == ["issue", "create"]:
    state["next"] += 1
    save()
    print(f"https://github.com/{opt('--repo')}/issues/{state['next']}")
elif args[:2] == ["pr", "create"]:
    state["next"] += 1
    owner, branch = opt("--head").split(":", 1)
    url = f"https://github.com/{opt('--repo')}/pull/{state['next']}"
    state["prs"].append({"number": state["next"], "url": url, "headRefName": branch,
                         "headRepositoryOwner": {"login": owner}, "state": "OPEN"})
    save()
    print("Creating pull request for " + opt("--head") + " into main in " + opt("--repo"), file=sys.stderr)
    print(url)
elif args[:2] == ["pr", "list"]:
    print(json.dumps([p for p in state["prs"] if p["headRefName"] == opt("--head")]))
elif args[:2] == ["pr", "edit"] and "--add-label" in args and os.environ.get("FAKE_GH_REFUSE_LABELS") == "1":
    print("GraphQL: ada does not have the correct permissions to execute `AddLabelsToLabelable` "
          "(addLabelsToLabelable)", file=sys.stderr)
    sys.exit(1)
elif args[:2] in (["pr", "edit"], ["pr", "comment"]):
    print(f"https://github.com/{opt('--repo')}/pull/{args[2]}")
else:
    print(f"fake gh: unexpected call {args}", file=sys.stderr)
    sys.exit(4)
'''


FAKE_GHSTACK = r'''#!/usr/bin/env python3
import json, subprocess, sys
from pathlib import Path

log = subprocess.run(["git", "log", "--format=%H%x00%B%x1e", "-n", "3"], capture_output=True, text=True,
                     check=True).stdout
commits = [r.strip("\n").split("\0", 1) for r in log.split("\x1e") if r.strip()]
out = Path(__file__).resolve().parent.parent / "ghstack.json"
out.write_text(json.dumps({"argv": sys.argv[1:], "commits": commits}))
'''


class Hub:
    """The stand-in gh's bin folder, its log and the bare fork."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "bin").mkdir(parents=True)
        gh = root / "bin" / "gh"
        gh.write_text(FAKE_GH.replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1))
        gh.chmod(0o755)
        ghstack = root / "bin" / "ghstack"
        ghstack.write_text(FAKE_GHSTACK.replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1))
        ghstack.chmod(0o755)
        self.fork = root / "fork.git"
        subprocess.run(["git", "init", "-q", "--bare", str(self.fork)], check=True)

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def calls(self) -> list[dict[str, object]]:
        log = self.root / "gh.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def argvs(self, *prefix: str) -> list[list[str]]:
        return [c["argv"] for c in self.calls() if c["argv"][:len(prefix)] == list(prefix)]  # type: ignore[index,misc]

    def branches(self) -> dict[str, str]:
        out = subprocess.run(["git", "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads"],
                             cwd=self.fork, capture_output=True, text=True, check=True).stdout
        return dict(line.split(" ", 1) for line in out.splitlines())

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.fork, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Hub:
    made = Hub(tmp_path / "hub")
    monkeypatch.setenv("PATH", f"{made.bin}{os.pathsep}{os.environ['PATH']}")
    return made


# With 45 lines a part, the project's series splits into three: the core, the operations, bindings and tests.
THREE_PARTS = 45
THREE_GROUPS = '\n[[split.groups]]\ntitle = "Bindings and tests"\npaths = ["torch/mps/**", "test/test_mps.py"]\n'


def ready_project(tmp_path: Path, hub: Hub, *, max_lines: int = 2000, extra: str = "") -> Project:
    """READY except for the linked issue, which submit opens; the documents rendered; [submit] names the fork."""
    project = make_project(tmp_path, issue=None, max_lines=max_lines)
    project.upstream.git("config", "user.name", "Ada Contributor")
    project.upstream.git("config", "user.email", "ada@contributor.invalid")
    with project.config_path.open("a") as f:
        f.write(f'\n[submit]\nfork = "{hub.fork}"\nowner = "ada"\nbranch_prefix = "mps-pool"\n{extra}')
        if max_lines == THREE_PARTS:
            f.write(THREE_GROUPS)
    project.write_evidence(RUN_1, passing_stages())
    return project


def split(project: Project) -> SplitResult:
    # Looked up when called: test_cli patches operations.split.split_series, which a module-level
    # `from mpspatch.commands.split import split` would have bound before it could.
    from mpspatch.operations import split as split_operation

    return split_operation.split_series(Workspace(project.config()))


def render_all(project: Project, parts: int = 0) -> None:
    config = project.config()
    for k in range(1, parts + 1):
        render(config, "pr", part=k)
    if not parts:
        render(config, "pr")
    render(config, "issue")


def test_first_submission_opens_the_issue_pushes_the_branch_opens_the_pr_and_labels_it(tmp_path: Path,
                                                                                         hub: Hub) -> None:
    project = ready_project(tmp_path, hub)
    render_all(project)
    result = submit(project.config())

    # The issue, from render-issue, then the PR saying Fixes #N.
    [issue] = hub.argvs("issue", "create")
    assert issue[issue.index("--repo") + 1] == REPO
    assert result.issue_created and result.issue == 170001
    [create] = hub.argvs("pr", "create")
    assert create[create.index("--head") + 1] == "ada:mps-pool/part-01"
    assert create[create.index("--base") + 1] == "main"
    assert "--draft" not in create
    body = next(c["body"] for c in hub.calls() if c["argv"][:2] == ["pr", "create"])
    assert "Fixes #170001" in str(body) and "ISSUE_NUMBER" not in str(body)
    # ...and the PR document on disk now says so too.
    assert "Fixes #170001" in (project.root / "audit/pr_description.md").read_text()

    # The branch on the fork is the series, made in the shadow with the clone's identity, on the base.
    branches = hub.branches()
    assert set(branches) == {"mps-pool/part-01"}
    sha = branches["mps-pool/part-01"]
    assert sha == result.parts[0].commit
    assert hub.git("log", "-1", "--format=%an <%ae>", sha).strip() == "Ada Contributor <ada@contributor.invalid>"
    base = project.upstream.git("rev-parse", "v1.0^{commit}").strip()
    assert hub.git("rev-parse", f"{sha}^").strip() == base
    assert hub.git("diff", "--stat", base, sha).count("|") == 5
    # The user's clone got no branch and no new HEAD.
    assert "mps-pool" not in project.upstream.git("branch", "--list")

    # Labels applied with gh pr edit --add-label, no bot comments.
    labels = [a[a.index("--add-label") + 1] for a in hub.argvs("pr", "edit") if "--add-label" in a]
    assert labels == ["module: mps", "release notes: mps"]
    assert not hub.argvs("pr", "comment")
    assert [(lb.name, lb.outcome) for lb in result.parts[0].labels] == [
        ("module: mps", LabelOutcome.APPLIED), ("release notes: mps", LabelOutcome.APPLIED)]

    # Recorded: issue, PR, SHA, series sha256, as v1.
    record = read_submission(project.config())
    assert record is not None and record.issue == 170001
    [v1] = record.versions
    assert v1.name == "v1" and v1.parts[0].pr == 170002 and v1.parts[0].commit == sha
    assert v1.parts[0].url == "https://github.com/pytorch/pytorch/pull/170002"
    status = subprocess.run([*MPSPATCH, "status", "--json"], cwd=project.root, capture_output=True, text=True)
    shown = json.loads(status.stdout)["submission"]
    assert shown["version"] == "v1" and shown["issue"] == 170001 and shown["parts"][0]["pr"] == 170002
    assert shown["parts"][0]["commit"] == sha
    text = subprocess.run([*MPSPATCH, "status"], cwd=project.root, capture_output=True, text=True).stdout
    assert "Submitted v1 to pytorch/pytorch: issue #170001; PRs #170002" in text


def test_labels_refused_become_pytorchbot_comments_and_are_never_claimed_applied(
        tmp_path: Path, hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GH_REFUSE_LABELS", "1")
    project = ready_project(tmp_path, hub)
    render_all(project)
    result = submit(project.config())
    comments = [a[a.index("--body") + 1] for a in hub.argvs("pr", "comment")]
    assert comments == ['@pytorchbot label "module: mps"', '@pytorchbot label "release notes: mps"']
    assert {lb.outcome for lb in result.parts[0].labels} == {LabelOutcome.REQUESTED}
    assert any("asked @pytorchbot" in n for n in result.notes)
    # A second run asks again for nothing.
    before = len(hub.calls())
    submit(project.config())
    assert not [c for c in hub.calls()[before:] if "--add-label" in c["argv"] or c["argv"][:2] == ["pr", "comment"]]


def test_resubmission_after_a_change_updates_in_place_and_records_v2(tmp_path: Path, hub: Hub) -> None:
    project = ready_project(tmp_path, hub)
    render_all(project)
    first = submit(project.config())
    old_sha = first.parts[0].commit

    # Nothing changed: nothing pushed, the PR edited in place, still v1.
    again = submit(project.config())
    assert again.version == "v1" and not again.new_version and not again.parts[0].pushed
    assert len(hub.argvs("pr", "create")) == 1 and len(hub.argvs("issue", "create")) == 1

    def shown() -> tuple[dict[str, object], str]:
        as_json = subprocess.run([*MPSPATCH, "status", "--json"], cwd=project.root, capture_output=True, text=True)
        text = subprocess.run([*MPSPATCH, "status"], cwd=project.root, capture_output=True, text=True).stdout
        return json.loads(as_json.stdout)["submission"], text

    submission, text = shown()
    assert submission["series_changed"] is False and "the series changed since" not in text

    # The patch changes (a regenerate after a rebase, say), verify runs again, the PR is re-rendered.
    edit_patch(project)
    project.relock()
    # status says the series moved on from v1, and where the range-diff is.
    submission, text = shown()
    assert submission["series_changed"] is True
    assert "the series changed since v1; `mpspatch submit --dry-run --compare v1`" in text
    project.write_evidence(RUN_2, passing_stages())
    render(project.config(), "pr")
    second = submit(project.config())
    assert second.version == "v2" and second.new_version
    assert len(hub.argvs("pr", "create")) == 1, "a re-submission never opens a second PR"
    assert len(hub.argvs("issue", "create")) == 1
    edits = [a for a in hub.argvs("pr", "edit") if "--body-file" in a]
    assert edits[-1][:3] == ["pr", "edit", "170002"]
    new_sha = hub.branches()["mps-pool/part-01"]
    assert new_sha == second.parts[0].commit != old_sha
    assert "+# pool size is fixed for now" in hub.git("show", new_sha)
    # The reviewers get a "changes since v1" comment.
    note = next(c["body"] for c in hub.calls() if c["argv"][:2] == ["pr", "comment"])
    assert "Changes since v1" in str(note) and "changed" in str(note)
    record = read_submission(project.config())
    assert record is not None and [v.name for v in record.versions] == ["v1", "v2"]
    assert record.versions[0].parts[0].commit == old_sha

    compared = submit(project.config(), dry_run=True, compare="v1")
    assert compared.comparison is not None
    assert [c.change for c in compared.comparison.changes] == ["changed"]


def test_resubmission_finds_an_open_pr_instead_of_opening_a_duplicate(tmp_path: Path, hub: Hub) -> None:
    project = ready_project(tmp_path, hub)
    render_all(project)
    submit(project.config())
    (project.root / ".mpspatch/submission.json").unlink()  # the record is lost; the PR on GitHub is not
    with project.config_path.open("a") as f:
        f.write("")
    text = project.config_path.read_text().replace("[render]\n", "[render]\nissue = 170001\n")
    project.config_path.write_text(text)
    render(project.config(), "pr")
    again = submit(project.config())
    assert len(hub.argvs("pr", "create")) == 1
    assert again.parts[0].pr == 170002 and again.parts[0].action == "updated"


def test_a_stack_of_three_parts_gives_three_branches_and_three_prs_in_order(tmp_path: Path, hub: Hub) -> None:
    project = ready_project(tmp_path, hub, max_lines=THREE_PARTS)
    stacked = split(project)
    assert len(stacked.stack.parts) == 3
    render_all(project, parts=3)
    result = submit(project.config())
    creates = hub.argvs("pr", "create")
    heads = [a[a.index("--head") + 1] for a in creates]
    assert heads == [f"ada:{branch_name('mps-pool', k)}" for k in (1, 2, 3)]
    assert [a[a.index("--title") + 1] for a in creates] == [
        f"[MPS] {p.title} ({p.index}/3)" for p in stacked.stack.parts]
    branches = hub.branches()
    shas = [branches[branch_name("mps-pool", k)] for k in (1, 2, 3)]
    assert shas == [p.commit for p in result.parts]
    # Part K holds parts 1..K: each branch is the one before plus one commit, and the trees are split's.
    base = project.upstream.git("rev-parse", "v1.0^{commit}").strip()
    assert hub.git("rev-parse", f"{shas[0]}^").strip() == base
    for k in (1, 2):
        assert hub.git("rev-parse", f"{shas[k]}^").strip() == shas[k - 1]
    for sha, part in zip(shas, stacked.stack.parts, strict=True):
        assert hub.git("rev-parse", f"{sha}^{{tree}}").strip() == part.tree
    bodies = [str(c["body"]) for c in hub.calls() if c["argv"][:2] == ["pr", "create"]]
    numbers = [p.pr for p in result.parts]
    assert "Depends on" not in bodies[0] and f"`{shas[0][:12]}`" in bodies[0]
    assert f"Depends on #{numbers[0]}." in bodies[1] and f"`{shas[1][:12]}`" in bodies[1]
    assert f"Depends on #{numbers[0]}, #{numbers[1]}." in bodies[2]



def test_each_pr_of_a_stack_is_told_what_changed_in_its_own_commits(tmp_path: Path, hub: Hub) -> None:
    """The "Changes since vN" comment on PR K compares the commits PR K held then (parts 1..K) with the ones it
    holds now, so the parts after it do not show as dropped."""
    project = ready_project(tmp_path, hub, max_lines=THREE_PARTS)
    parts = split(project).stack.parts
    render_all(project, parts=3)
    first = submit(project.config())
    edit_patch(project)  # the Python bindings: part 1
    project.relock()
    project.write_evidence(RUN_2, passing_stages())
    split(project)
    render_all(project, parts=3)
    second = submit(project.config())
    assert second.version == "v2"
    comments = [(c["argv"][2], str(c["body"])) for c in hub.calls() if c["argv"][:2] == ["pr", "comment"]]
    assert [n for n, _ in comments] == [str(p.pr) for p in first.parts]
    for k, (_, note) in enumerate(comments, start=1):
        lines = [line for line in note.splitlines() if line.startswith("- ")]
        assert [line.split(":")[0] for line in lines] == [
            f"- {j} -> {j} {'changed' if j == 1 else 'unchanged'}" for j in range(1, k + 1)], parts[k - 1].title

# With 46 lines a part the series is two: the core, then the operations with the bindings and the tests.
TWO_PARTS = 46


def test_a_part_that_landed_upstream_is_reported_and_dropped_from_the_stack(tmp_path: Path, hub: Hub) -> None:
    project = ready_project(tmp_path, hub, max_lines=TWO_PARTS)
    stacked = split(project)
    assert [p.files[0] for p in stacked.stack.parts] == ["aten/src/ATen/mps/MPSStream.mm",
                                                        "aten/src/ATen/native/mps/operations/Linear.mm"]
    render_all(project, parts=2)
    first = submit(project.config())
    prs = [p.pr for p in first.parts]
    stack_files = sorted((project.root / "patches/stack").glob("*.patch"))

    landed_sha = land_first_part(project, stack_files, stacked.stack.parts[0].title, prs[0])
    assert len(split(project).stack.parts) == 1
    render_all(project, parts=1)
    second = submit(project.config())

    # Part 1 is reported as landed and dropped; part 2 goes on as the new part 1 with its own branch and PR,
    # updated in place: no PR is opened again, and nothing is stale.
    assert [(p.index, p.pr, p.upstream) for p in second.landed] == [(1, prs[0], landed_sha)]
    assert any(f"landed upstream as {landed_sha[:12]} by PR #{prs[0]}" in n for n in second.notes)
    assert len(hub.argvs("pr", "create")) == 2
    assert [(p.branch, p.pr, p.action) for p in second.parts] == [(branch_name("mps-pool", 2), prs[1], "updated")]
    assert hub.branches()[branch_name("mps-pool", 2)] == second.parts[0].commit
    assert hub.git("rev-parse", f"{second.parts[0].commit}^").strip() == landed_sha
    assert not second.stale
    status = json.loads(subprocess.run([*MPSPATCH, "status", "--json"], cwd=project.root, capture_output=True,
                                       text=True).stdout)["submission"]
    assert [p["pr"] for p in status["landed"]] == [prs[0]] and [p["pr"] for p in status["parts"]] == prs[1:]
    text = subprocess.run([*MPSPATCH, "status"], cwd=project.root, capture_output=True, text=True).stdout
    assert f"landed upstream: #{prs[0]}" in text

    # Submitting again finds nothing new that landed, and keeps the record of what did.
    third = submit(project.config())
    assert not third.landed and third.version == second.version
    record = read_submission(project.config())
    assert record is not None and [p.pr for p in record.landed] == [prs[0]]


def test_parts_the_stack_no_longer_has_are_reported_stale_and_left_alone(tmp_path: Path, hub: Hub) -> None:
    project = ready_project(tmp_path, hub, max_lines=THREE_PARTS)
    assert len(split(project).stack.parts) == 3
    render_all(project, parts=3)
    first = submit(project.config())
    prs = [p.pr for p in first.parts]

    # The whole series now fits one PR: part 1 keeps its branch and PR, parts 2 and 3 are stale.
    project.config_path.write_text(project.config_path.read_text().replace(
        f"max_lines = {THREE_PARTS}", "max_lines = 2000"))
    assert len(split(project).stack.parts) == 1
    render_all(project, parts=1)
    second = submit(project.config())
    assert [(p.branch, p.pr) for p in second.parts] == [(branch_name("mps-pool", 1), prs[0])]
    stale = [(branch_name("mps-pool", k), prs[k - 1]) for k in (2, 3)]
    assert [(s.branch, s.pr) for s in second.stale] == stale and not second.landed
    assert {b for b, _ in stale} <= set(hub.branches()), "a stale branch is reported, never deleted"
    assert len(hub.argvs("pr", "create")) == 3 and not hub.argvs("pr", "close")
    assert any(f"branch {stale[0][0]} and PR #{stale[0][1]}" in n for n in second.notes)
    shown = subprocess.run([*MPSPATCH, "status", "--json"], cwd=project.root, capture_output=True, text=True)
    assert [(p["branch"], p["pr"]) for p in json.loads(shown.stdout)["submission"]["stale"]] == stale
    text = subprocess.run([*MPSPATCH, "status"], cwd=project.root, capture_output=True, text=True).stdout
    assert f"stale, not in the stack: {stale[0][0]} (#{stale[0][1]})" in text
    json_run = subprocess.run([*MPSPATCH, "submit", "--dry-run", "--json"], cwd=project.root, capture_output=True,
                              text=True)
    assert [(p["branch"], p["pr"]) for p in json.loads(json_run.stdout)["stale"]] == stale


def test_dry_run_prints_every_command_and_changes_nothing(tmp_path: Path, hub: Hub) -> None:
    project = ready_project(tmp_path, hub)
    render_all(project)
    docs = {p: p.read_text() for p in (project.root / "audit").glob("*.md")}
    env = {**os.environ, "PATH": f"{hub.bin}{os.pathsep}{os.environ['PATH']}"}
    shown = subprocess.run([*MPSPATCH, "submit", "--dry-run", "--json"], cwd=project.root, capture_output=True,
                           text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    plan = json.loads(shown.stdout)
    commands = [s["command"] for s in plan["steps"]]
    assert commands[0].startswith("gh issue create --repo pytorch/pytorch --title ")
    assert any(c.startswith(f"git push --atomic --porcelain {hub.fork} ") and
               c.endswith(":refs/heads/mps-pool/part-01") for c in commands)
    assert any(c.startswith("gh pr create --repo pytorch/pytorch --base main --head ada:mps-pool/part-01 ")
               for c in commands)
    assert "gh pr edit '<PR of part 1>' --repo pytorch/pytorch --add-label 'release notes: mps'" in commands
    # Only the read-only query ran (it makes the plan exact: create or update); everything else is planned.
    assert all(s["outcome"] == "" for s in plan["steps"] if not s["command"].startswith("gh pr list "))
    # Nothing happened: no gh call that changes anything, no branch, no record, documents untouched.
    assert all(c["argv"][:2] == ["pr", "list"] for c in hub.calls())
    assert hub.branches() == {}
    assert read_submission(project.config()) is None
    assert docs == {p: p.read_text() for p in (project.root / "audit").glob("*.md")}
    text = subprocess.run([*MPSPATCH, "submit", "--dry-run"], cwd=project.root, capture_output=True, text=True,
                          env=env)
    assert text.returncode == 0 and "Would run" in text.stdout and "$ gh pr create" in text.stdout


def test_refused_when_not_ready_unless_draft(tmp_path: Path, hub: Hub) -> None:
    project = ready_project(tmp_path, hub)
    project.write_evidence(RUN_2, passing_stages(tsan_races=2))  # TSan now finds two races
    render_all(project)
    with pytest.raises(NotReadyToSubmit) as refused:
        submit(project.config())
    assert "stage:tsan" in refused.value.message and "--draft" in refused.value.message
    assert hub.calls() == [] and hub.branches() == {}
    env = {**os.environ, "PATH": f"{hub.bin}{os.pathsep}{os.environ['PATH']}"}
    cli = subprocess.run([*MPSPATCH, "submit"], cwd=project.root, capture_output=True, text=True, env=env)
    assert cli.returncode == 1 and "NOT READY" in cli.stderr and "Traceback" not in cli.stderr

    drafted = submit(project.config(), draft=True)
    [create] = hub.argvs("pr", "create")
    assert "--draft" in create and drafted.draft
    assert any("drafts" in n for n in drafted.notes)


def test_exit_2_for_stale_documents_missing_gh_and_a_stopped_rebase(tmp_path: Path, hub: Hub) -> None:
    project = ready_project(tmp_path, hub)
    env = {**os.environ, "PATH": f"{hub.bin}{os.pathsep}{os.environ['PATH']}"}
    stale = subprocess.run([*MPSPATCH, "submit"], cwd=project.root, capture_output=True, text=True, env=env)
    assert stale.returncode == 2
    assert "audit/pr_description.md: does not exist" in stale.stderr and "mpspatch render-pr" in stale.stderr
    render_all(project)
    (project.root / "audit/pr_description.md").write_text("edited by hand\n")
    stale = subprocess.run([*MPSPATCH, "submit"], cwd=project.root, capture_output=True, text=True, env=env)
    assert stale.returncode == 2 and "is stale" in stale.stderr
    assert hub.calls() == []

    git_dir = Path(subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout.strip())
    bare_path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "gh").exists())
    no_gh = subprocess.run([*MPSPATCH, "submit"], cwd=project.root, capture_output=True, text=True,
                           env={**os.environ, "PATH": f"{bare_path}{os.pathsep}{git_dir}"})
    assert no_gh.returncode == 2 and "gh: not found on PATH; install the GitHub CLI" in no_gh.stderr
    assert len(no_gh.stderr.strip().splitlines()) == 1

    render_all(project)
    write_state(project.config(), REBASE)  # a rebase stopped on conflicts
    stopped = subprocess.run([*MPSPATCH, "submit"], cwd=project.root, capture_output=True, text=True, env=env)
    assert stopped.returncode == 2 and "`mpspatch submit` waits for it" in stopped.stderr
    assert hub.calls() == [] and hub.branches() == {}


def test_ghstack_method_builds_one_linear_stack_whose_messages_are_the_part_descriptions(
        tmp_path: Path, hub: Hub) -> None:
    project = ready_project(tmp_path, hub, max_lines=THREE_PARTS, extra='method = "ghstack"\n')
    stacked = split(project)
    render_all(project, parts=3)
    text = project.config_path.read_text().replace("[render]\n", "[render]\nissue = 170001\n")
    project.config_path.write_text(text)
    for k in (1, 2, 3):
        render(project.config(), "pr", part=k)
    plan = submit(project.config(), dry_run=True)
    assert plan.steps[0].command == "ghstack submit --base main"
    assert all(s.command.startswith(("gh pr edit '<PR of part", "gh pr comment '<PR of part")) for s in plan.steps[1:])
    assert [p.action for p in plan.parts] == ["would submit with ghstack"] * 3
    shadow = shadow_path(project.config().state_dir)
    base = project.upstream.git("rev-parse", "v1.0^{commit}").strip()
    tip = plan.parts[-1].commit
    log = subprocess.run(["git", "log", "--format=%H%x00%B%x1e", f"{base}..{tip}"], cwd=shadow,
                         capture_output=True, text=True, check=True).stdout
    records = [r.strip("\n").split("\0", 1) for r in log.split("\x1e") if r.strip()]
    assert [sha for sha, _ in reversed(records)] == [p.commit for p in plan.parts]
    for (sha, message), part in zip(reversed(records), stacked.stack.parts, strict=True):
        body = (project.root / f"audit/pr_description.part-{part.index:02d}.md").read_text()
        assert message.startswith(f"[MPS] {part.title} ({part.index}/3)\n\n")
        assert message.strip() == f"[MPS] {part.title} ({part.index}/3)\n\n{body.strip()}"
        assert subprocess.run(["git", "rev-parse", f"{sha}^{{tree}}"], cwd=shadow, capture_output=True,
                              text=True).stdout.strip() == part.tree
    assert hub.calls() == [] and hub.branches() == {}

    # The real run: `ghstack submit` in a checkout of exactly that stack (the stand-in records what it saw).
    done = submit(project.config())
    ran = json.loads((hub.root / "ghstack.json").read_text())
    assert ran["argv"] == ["submit", "--base", "main"]
    assert [sha for sha, _ in ran["commits"]] == [p.commit for p in reversed(done.parts)]
    assert [message.strip() for _, message in ran["commits"]] == [p.message.strip() for p in reversed(done.parts)]
    record = read_submission(project.config())
    assert record is not None and record.latest is not None
    assert [p.commit for p in record.latest.parts] == [p.commit for p in plan.parts]
    # This stand-in writes no Pull-Request trailers: with no PR named, nothing is labelled and nothing claimed.
    assert hub.calls() == [], "with ghstack, gh is not called to open PRs: ghstack opens them"
    assert all(p.pr is None and p.labels == () for p in done.parts)
    assert any("name no PR for part(s) 1, 2, 3" in n for n in done.notes)


def test_ghstack_own_parser_reads_the_stack_mpspatch_hands_it_part_by_part(tmp_path: Path, hub: Hub) -> None:
    """ghstack's own code (not the stand-in) reads the checkout mpspatch runs `ghstack submit` in."""
    ghstack_git = pytest.importorskip("ghstack.git", reason="ghstack is not installed (pip install -e '.[dev]')")
    ghstack_submit = pytest.importorskip("ghstack.submit", reason="ghstack is not installed")
    project = ready_project(tmp_path, hub, max_lines=THREE_PARTS, extra='method = "ghstack"\n')
    stacked = split(project)
    render_all(project, parts=3)
    text = project.config_path.read_text().replace("[render]\n", "[render]\nissue = 170001\n")
    project.config_path.write_text(text)
    for k in (1, 2, 3):
        render(project.config(), "pr", part=k)
    done = submit(project.config())
    checkout = project.config().state_dir / "ghstack"  # where mpspatch ran `ghstack submit`
    base = project.upstream.git("rev-parse", "v1.0^{commit}").strip()

    # Submitter.parse_revs: `git rev-list --header --topo-order --boundary HEAD ^origin/main` through
    # ghstack.git.split_header; submit points the shadow's origin/main at the series base, so it bounds the stack.
    raw = subprocess.run(["git", "rev-list", "--header", "--topo-order", "--boundary", "HEAD", "^origin/main"],
                         cwd=checkout, capture_output=True, text=True, check=True).stdout
    headers = ghstack_git.split_header(raw)
    to_submit = [h for h in headers if not h.boundary]
    assert [h.commit_id for h in headers if h.boundary] == [base]
    assert [h.commit_id for h in reversed(to_submit)] == [p.commit for p in done.parts]
    parts = stacked.stack.parts
    assert [h.tree for h in reversed(to_submit)] == [p.tree for p in parts]
    assert [h.parents for h in reversed(to_submit)] == [[base], *[[p.commit] for p in done.parts[:-1]]]

    # ghstack.git.convert_header makes each commit a Diff; Submitter._default_title_and_body is what ghstack
    # opens the PR with (direct mode: the body is the commit body as is).
    opener = SimpleNamespace(github_url="github.com", direct=True, stack_header=ghstack_submit.STACK_HEADER)
    for header, part in zip(reversed(to_submit), parts, strict=True):
        diff = ghstack_git.convert_header(header, "github.com")
        assert diff.pull_request_resolved is None, "a new stack: no PR recorded in the message yet"
        assert ghstack_submit.RE_GHSTACK_SOURCE_ID.search(diff.summary) is None, "no ghstack-source-id yet"
        title, body = ghstack_submit.Submitter._default_title_and_body(opener, diff, None)
        written = (project.root / f"audit/pr_description.part-{part.index:02d}.md").read_text()
        assert title == f"[MPS] {part.title} ({part.index}/3)"
        assert body.strip() == written.strip()


def test_the_submit_table_is_checked_and_the_owner_comes_from_a_github_fork_url(tmp_path: Path) -> None:
    from mpspatch.foundation.config import SubmitMethod, load_config
    from mpspatch.foundation.errors import ConfigError

    project = make_project(tmp_path)
    text = project.config_path.read_text()
    project.config_path.write_text(text + '\n[submit]\nfork = "https://github.com/ada/pytorch.git"\n')
    submit_table = project.config().submit
    assert (submit_table.owner, submit_table.repo, submit_table.base) == ("ada", "pytorch/pytorch", "main")
    assert submit_table.method == SubmitMethod.FORK
    project.config_path.write_text(text + '\n[submit]\nmethod = "forks"\n')
    with pytest.raises(ConfigError, match=r"\[submit\]\.method 'forks' is not one of fork, ghstack; fix: method"):
        load_config(project.config_path)
    project.config_path.write_text(text + '\n[submit]\nrepo = "pytorch"\n')
    with pytest.raises(ConfigError, match=r"\[submit\]\.repo 'pytorch' is not OWNER/NAME"):
        load_config(project.config_path)


def land_first_part(project: Project, stack_files: list[Path], title: str, pr: int | None) -> str:
    """A maintainer merges part 1: the merge bot lands its change upstream with the trailer naming its PR, and
    the series is rebased onto that commit (the tag moves, as `rebase` moves the base). The landed SHA."""
    up = project.upstream
    up.git("apply", "--index", str(stack_files[0]))
    up.commit(f"[MPS] {title}\n\nPull Request resolved: https://github.com/pytorch/pytorch/pull/{pr}")
    landed_sha = up.git("rev-parse", "HEAD").strip()
    up.git("tag", "-f", "v1.0")
    up.git("apply", "--index", str(stack_files[1]))
    project.patch().write_text(up.git("diff", "--cached", "--full-index", "HEAD"))
    up.git("reset", "-q", "--hard")
    project.relock()
    project.write_evidence(RUN_2, passing_stages())
    return landed_sha
