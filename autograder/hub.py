"""A real JupyterHub for one course on this machine, on loopback only (`make hub`).

    make hub                 # or: python -m autograder.hub --port 8000

As root, it builds (once) what every user's server runs, then, at each start:

* the checkout closed to other accounts (it holds the answer keys);
* the environment, `/var/lib/backprop-lab/hub-<checkout>/` (world-readable, so every
  account can run it): `venv/`, made with Debian's python3, holds jupyterhub, JupyterLab,
  nbgrader and this package; of the package, other accounts read only what the sandbox
  sees (the student kit and the child's side of the engine): the references and case
  generators are the `backprop-staff` group's.
  `node_modules/` holds configurable-http-proxy (npm, project-local).
* unix accounts (made here when missing, marked `backprop-lab hub` in their GECOS): a grader
  and students, with fresh random passwords (PAM logs them in); their homes are reset;
* a PostgreSQL gradebook: a cluster of its own in `RUN/postgres`, run by Debian's `postgres`
  account on loopback, password logins only;
* the course in the grader's home, its roster, nn_from_scratch generated and released into
  an exchange laid out as the README's "The front door" says;
* `RUN/jupyterhub_config.py` (CONFIG below), then jupyterhub, until Ctrl-C. The grading
  service is a managed service of the hub, run as root (the sandbox's full isolation).

`tests/test_hub.py` starts the same hub with other accounts, ports and RUN.
"""

import argparse
import contextlib
import fcntl
import grp
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .engine.isolation import SANDBOX_MODULES

REPO = Path(__file__).resolve().parent.parent


def environment_folder() -> Path:
    """Where the hub's environment is built: $HUB_DIR, else a folder of this checkout's own
    under /var/lib. Never inside the checkout, which the hub closes to other accounts (it
    holds the answer keys and the grader's references)."""
    if os.environ.get("HUB_DIR"):
        return Path(os.environ["HUB_DIR"])
    checkout = hashlib.sha256(str(REPO).encode()).hexdigest()[:12]
    return Path("/var/lib/backprop-lab") / f"hub-{checkout}"


ENV = environment_folder()
SYSTEM_PYTHON = "/usr/bin/python3"  # every account can run it (pyenv's may sit in /root)
PROXY = "configurable-http-proxy@5.1.0"
STAFF = "backprop-staff"  # the group that reads the grader's code
MARK = "backprop-lab hub"  # the GECOS of the accounts this module made, then their hub's RUN
SERVICE_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z [a-z-]+( |$)")  # autograder.service.log
COURSE_ID = "backprop-lab"
ASSIGNMENT = "nn_from_scratch"
STUDENTS = ("ada", "bob", "cho")
STUDENT_ONLY_LAB = {"@jupyter/nbgrader:formgrader": True,
                    "@jupyter/nbgrader:create-assignment": True}

# The hub's configuration below the settings that vary (paths, ports, names), which
# RUN/jupyterhub_config.py defines above it. The README quotes it; a test compares them.
CONFIG = '''\
c = get_config()
c.JupyterHub.ip = "127.0.0.1"                  # loopback only
c.JupyterHub.port = PORT
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = HUB_PORT
c.ConfigurableHTTPProxy.command = [f"{ENV}/node_modules/.bin/configurable-http-proxy"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PROXY_API_PORT}"
c.JupyterHub.db_url = f"sqlite:///{RUN}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{RUN}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = f"{RUN}/proxy.pid"

c.JupyterHub.authenticator_class = "pam"       # the accounts' unix passwords
c.Authenticator.allowed_users = {GRADER, *STUDENTS}
c.JupyterHub.spawner_class = "localprocess"    # each server runs as its user
c.Spawner.cmd = [f"{ENV}/venv/bin/jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = c.Spawner.http_timeout = 120
# Every server reads the hub-wide nbgrader_config.py (the exchange) in RUN/etc/jupyter;
# students' servers also RUN/etc/jupyter/student: no formgrader, no "create assignment".
c.Spawner.environment = {"PATH": f"{ENV}/venv/bin:/usr/bin:/bin",
                         "JUPYTER_CONFIG_PATH": f"{RUN}/etc/jupyter"}


def per_user(spawner):
    """The grader's server opens in the course root, where the formgrader finds it."""
    if spawner.user.name == GRADER:
        spawner.notebook_dir = COURSE
    else:
        spawner.environment["JUPYTER_CONFIG_PATH"] = f"{RUN}/etc/jupyter/student:{RUN}/etc/jupyter"


c.Spawner.pre_spawn_hook = per_user

c.JupyterHub.services = [{  # a managed service: the hub starts it (as root) and restarts it
    "name": "autograder",
    "command": [f"{ENV}/venv/bin/python", "-m", "autograder", "serve", "--course", COURSE],
    "cwd": COURSE,
    "environment": {"PATH": f"{ENV}/venv/bin:/usr/bin:/bin",
                    "JUPYTER_CONFIG_PATH": f"{RUN}/etc/jupyter"},
}]
'''


class HubError(RuntimeError):
    """The hub cannot be set up here; the message says what to do."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(*command: str, user: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    """A command, as user when given; its output in the error when it fails."""
    if user:
        command = ("runuser", "-u", user, "--", *command)
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise HubError(f"{' '.join(command)} failed (exit {done.returncode}):\n{tail}")
    return done


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise HubError("no PostgreSQL server: apt-get install -y postgresql")
    return found[-1].parent


def check_machine() -> None:
    """Root, and the Debian tools the hub needs; a one-line error naming the package."""
    if os.geteuid() != 0:
        raise HubError("make hub needs root: it creates unix accounts and runs the hub as "
                       "root (sudo make hub)")
    for tool, package in (("node", "nodejs"), ("npm", "npm"), ("useradd", "passwd"),
                          ("runuser", "util-linux"), ("pkill", "procps"),
                          ("bwrap", "bubblewrap")):
        if shutil.which(tool) is None:
            raise HubError(f"{tool} is missing: apt-get install -y {package}")
    if not Path(SYSTEM_PYTHON).is_file() or subprocess.run(
            [SYSTEM_PYTHON, "-c", "import ensurepip, venv"], capture_output=True).returncode:
        raise HubError(f"{SYSTEM_PYTHON} cannot make a venv: apt-get install -y python3-venv")
    postgres_bin()
    for folder in [*reversed(ENV.parents)]:
        if folder.exists() and not folder.stat().st_mode & stat.S_IXOTH:
            raise HubError(f"the hub's users cannot reach {ENV}: {folder} is mode "
                           f"{stat.S_IMODE(folder.stat().st_mode):o}; clone the repository "
                           f"where every account can read, or set HUB_DIR to such a folder")



def close_checkout(say=print) -> None:
    """The checkout holds the answer keys (solutions/, source/), the grader's references and
    its history: no account but root's may enter it while students have shells here."""
    mode = stat.S_IMODE(REPO.stat().st_mode)
    if mode & 0o007:
        REPO.chmod(mode & ~0o007)
        say(f"closed {REPO} to other accounts (mode {mode & ~0o007:o}): it holds the answer "
            f"keys")

# ---- the environment every server runs, built once --------------------------------------

def stamp_of(paths: list[Path], *extra: str) -> str:
    """A digest of the files' names and contents (and of extra)."""
    digest = hashlib.sha256("".join(extra).encode())
    for path in paths:
        digest.update(str(path.relative_to(REPO)).encode() + path.read_bytes())
    return digest.hexdigest()


def build_environment(say=print) -> None:
    """ENV/venv (Debian's python3 with the pinned packages; ENV/node_modules, the proxy),
    rebuilt when the pins change, and this package in it (with the release, which the
    engine reads beside the package), reinstalled when its code or the release changes.
    One build at a time (a lock): concurrent starts wait for it."""
    ENV.mkdir(parents=True, exist_ok=True)
    ENV.chmod(0o755)
    with open(ENV / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        packages = stamp_of([REPO / "pyproject.toml", REPO / "constraints.txt"], PROXY)
        code = stamp_of(sorted([*(REPO / "autograder").rglob("*.py"),
                                *(REPO / "assignments").rglob("*.*")]), packages)
        if (ENV / "stamp").is_file() and (ENV / "stamp").read_text() == code:
            return
        os.umask(0o022)  # every account runs what is built here
        python = ENV / "venv" / "bin" / "python"
        started = time.monotonic()
        if not (ENV / "packages").is_file() or (ENV / "packages").read_text() != packages:
            say(f"building the hub's environment in {ENV} (once; a few minutes)")
            install_packages(python)
            (ENV / "packages").write_text(packages)
        for stale in (ENV / "venv").glob("lib/python3*/site-packages/autograder"):
            shutil.rmtree(stale)  # a module renamed since the last build must not stay behind
        run(str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall",
            f"{REPO}")
        package = staff_only(python)
        release = package.parent / "assignments"  # autograder.course.REPO / "assignments"
        shutil.rmtree(release, ignore_errors=True)
        shutil.copytree(REPO / "assignments", release)
        (ENV / "stamp").write_text(code)
        say(f"the hub's environment is current ({time.monotonic() - started:.0f} s)")


def install_packages(python: Path) -> None:
    """A fresh ENV/venv with the pinned packages; configurable-http-proxy in ENV."""
    shutil.rmtree(ENV / "venv", ignore_errors=True)
    run(SYSTEM_PYTHON, "-m", "venv", str(ENV / "venv"))
    run(str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    # The package's requirements, not the package: build_environment installs it next
    # (building it here too cost a second build of its wheel).
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    run(str(python), "-m", "pip", "install", "--quiet", "-c", str(REPO / "constraints.txt"),
        *project["optional-dependencies"]["hub"], *project["dependencies"])
    settings = ENV / "venv" / "share" / "jupyter" / "lab" / "settings"
    settings.mkdir(parents=True, exist_ok=True)  # JupyterLab fetches no news (loopback only)
    (settings / "overrides.json").write_text(json.dumps(
        {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false"}}))
    run("npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(ENV), PROXY)


def staff_only(python: Path) -> Path:
    """Of the installed package, other accounts read only SANDBOX_MODULES (the kit and the
    child's side of the engine, what the sandbox itself shows); the rest is STAFF's. Returns
    the package's folder."""
    run("groupadd", "--force", "--system", STAFF)
    # -I and cwd /: the installed package, never a checkout that the working folder holds.
    package = Path(run(str(python), "-I", "-c", "import autograder; "
                       "print(autograder.__file__)", cwd="/").stdout.strip()).parent
    if ENV not in package.parents:
        raise HubError(f"the package imported from {package}, not from {ENV}")
    gid = grp.getgrnam(STAFF).gr_gid
    for path in [package, *package.rglob("*")]:
        os.chown(path, 0, gid, follow_symlinks=False)
        os.chmod(path, stat.S_IMODE(path.stat().st_mode) & ~0o007)
    for name in SANDBOX_MODULES:
        shown = package / name
        for path in [shown, *(shown.rglob("*") if shown.is_dir() else [])]:
            path.chmod(path.stat().st_mode | (0o005 if path.is_dir() else 0o004))
        for parent in shown.relative_to(package).parents:  # listed: Python's finder reads it
            (package / parent).chmod((package / parent).stat().st_mode | 0o005)
    return package


def remove_accounts(names) -> None:
    """Unix accounts, their processes and their homes."""
    for name in names:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


def remove_abandoned_accounts() -> None:
    """The accounts of hubs whose state folder is gone (a run killed before its clean-up)."""
    remove_accounts(account.pw_name for account in pwd.getpwall()
                    if account.pw_gecos.startswith(f"{MARK} /")
                    and not Path(account.pw_gecos[len(MARK) + 1:]).exists())


# ---- one start ---------------------------------------------------------------------------

@dataclass
class Hub:
    """One hub: its state folder, port, accounts ({name: password}) and course."""

    run_dir: Path
    port: int = 8000
    prefix: str = "bp-"
    accounts: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def grader(self) -> str:
        return f"{self.prefix}grader"

    @property
    def students(self) -> list[str]:
        return [f"{self.prefix}{name}" for name in STUDENTS]

    @property
    def course(self) -> Path:
        return Path(pwd.getpwnam(self.grader).pw_dir) / "backprop-lab"

    @property
    def exchange(self) -> Path:
        return self.run_dir / "exchange"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def setup(self, say=print) -> None:
        """Everything before jupyterhub starts: accounts, gradebook, course, config."""
        check_machine()
        close_checkout(say)
        build_environment(say)
        if self.run_dir.exists():
            self.stop_postgres()
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True)
        self.run_dir.chmod(0o755)
        say("accounts ...")
        self.make_accounts()
        say("PostgreSQL gradebook ...")
        db_url = self.start_postgres()
        say(f"course {self.course}: roster, {ASSIGNMENT} generated and released ...")
        self.make_course(db_url)
        self.write_config()

    def make_accounts(self) -> None:
        """The grader (in STAFF) and the students, with fresh passwords and fresh homes."""
        for name in [self.grader, *self.students]:
            mark = f"{MARK} {self.run_dir}"
            try:
                account = pwd.getpwnam(name)
            except KeyError:
                run("useradd", "--create-home", "--shell", "/bin/bash", "--comment", mark, name)
                account = pwd.getpwnam(name)
            if not account.pw_gecos.startswith(MARK):
                raise HubError(f"the account {name} exists and is not this hub's: remove it, "
                               f"or start the hub with another --prefix")
            if account.pw_gecos != mark:
                run("usermod", "--comment", mark, name)
            # What the account left running from an earlier start (a watcher of the command
            # lines, a squatter in the exchange) ends before anything is made again.
            subprocess.run(["pkill", "--signal", "KILL", "--uid", name], check=False)
            home = Path(account.pw_dir)
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(mode=0o700)
            # A terminal's login shell: the hub's environment and configuration again.
            (home / ".profile").write_text(
                f"export PATH={ENV}/venv/bin:$PATH\n"
                f"export JUPYTER_CONFIG_PATH={self.config_path(name)}\n")
            for path in (home, home / ".profile"):
                os.chown(path, account.pw_uid, account.pw_gid)
            self.accounts[name] = secrets.token_urlsafe(9)
        run("usermod", "--append", "--groups", STAFF, self.grader)
        run("chpasswd", input="".join(f"{n}:{p}\n" for n, p in self.accounts.items()))

    def config_path(self, name: str) -> str:
        """The accounts' Jupyter configuration: the hub-wide one, and for students also
        RUN/etc/jupyter/student (no formgrader)."""
        config = self.run_dir / "etc" / "jupyter"
        return str(config) if name == self.grader else f"{config / 'student'}:{config}"

    def remove_accounts(self) -> None:
        """The accounts this hub made, with their homes (the tests' clean-up)."""
        remove_accounts(self.accounts)

    def start_postgres(self) -> str:
        """A PostgreSQL cluster of the hub's own on loopback; the gradebook's URL."""
        bindir, folder = postgres_bin(), self.run_dir / "postgres"
        folder.mkdir(mode=0o700)
        shutil.chown(folder, "postgres", "postgres")
        superuser, owner = secrets.token_hex(16), secrets.token_hex(16)
        (folder / "pw").write_text(superuser)
        shutil.chown(folder / "pw", "postgres")
        self.pg_port = free_port()
        run(str(bindir / "initdb"), "-D", str(folder / "data"), "-U", "postgres",
            "-A", "scram-sha-256", f"--pwfile={folder / 'pw'}", "--no-sync", "-E", "UTF8",
            user="postgres")
        (folder / "pw").unlink()
        run(str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"),
            "-w", "-o", f"-p {self.pg_port} -k {folder} -c listen_addresses=127.0.0.1",
            "start", user="postgres")
        sql = (f"CREATE ROLE nbgrader LOGIN PASSWORD '{owner}';"
               "CREATE DATABASE backprop_lab OWNER nbgrader;")
        for statement in sql.split(";")[:2]:  # on stdin: a command line is every account's
            run("psql", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", "-q",
                input=statement, env={**os.environ, "PGPASSWORD": superuser})
        return f"postgresql+psycopg2://nbgrader:{owner}@127.0.0.1:{self.pg_port}/backprop_lab"

    def stop_postgres(self) -> None:
        data = self.run_dir / "postgres" / "data"
        if (data / "postmaster.pid").exists():
            run(str(postgres_bin() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop",
                user="postgres")

    def nbgrader(self, *args: str, stdin: str | None = None) -> None:
        """An nbgrader command in the course, as the grader, in the hub's environment."""
        run("env", f"PATH={ENV}/venv/bin:/usr/bin:/bin", f"HOME={self.course.parent}",
            f"JUPYTER_CONFIG_PATH={self.run_dir / 'etc' / 'jupyter'}", "nbgrader", *args,
            user=self.grader, cwd=self.course, input=stdin, timeout=600)

    def make_course(self, db_url: str) -> None:
        """The course in the grader's home (PostgreSQL gradebook, the roster), the exchange
        (root 1777, inbound/ 3733), the hub-wide nbgrader_config.py, the release."""
        account = pwd.getpwnam(self.grader)
        config_dir = self.run_dir / "etc" / "jupyter"
        (config_dir / "student" / "labconfig").mkdir(parents=True)
        for folder in (self.run_dir / "etc", config_dir, config_dir / "student",
                       config_dir / "student" / "labconfig"):
            folder.chmod(0o755)
        (config_dir / "nbgrader_config.py").write_text(
            "c = get_config()\n"
            f"c.Exchange.root = {str(self.exchange)!r}\n"
            f"c.CourseDirectory.course_id = {COURSE_ID!r}\n")
        # The staff's servers escape the formgrader's pages and typeset their maths offline;
        # students' servers (their file replaces this setting) have no formgrader at all.
        (config_dir / "jupyter_server_config.json").write_text(json.dumps(
            {"ServerApp": {"jpserver_extensions": {"autograder.formgrader_guard": True}}},
            indent=1))
        (config_dir / "student" / "jupyter_server_config.json").write_text(json.dumps(
            {"ServerApp": {"jpserver_extensions": {
                "nbgrader.server_extensions.formgrader": False}}}, indent=1))
        (config_dir / "student" / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": STUDENT_ONLY_LAB}, indent=1))
        for path in config_dir.rglob("*.*"):
            path.chmod(0o644)
        # The course's folder is the grader's before anyone may write beside it: a student
        # who made it first would own it, and release_assignment would refuse it.
        self.exchange.mkdir(mode=0o755)
        (self.exchange / COURSE_ID).mkdir(mode=0o755)
        os.chown(self.exchange / COURSE_ID, account.pw_uid, account.pw_gid)
        self.exchange.chmod(0o1777)
        course = self.course
        shutil.copytree(REPO / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT)
        shutil.copy(REPO / "nbgrader_config.py", course)
        (course / "nbgrader_config_local.py").write_text(
            "c = get_config()\n"
            f"c.CourseDirectory.root = {str(course)!r}\n"
            f"c.CourseDirectory.db_url = {db_url!r}\n")
        (course / "roster.csv").write_text(
            "id,first_name\n" + "".join(f"{s},{s[len(self.prefix):].title()}\n"
                                       for s in self.students))
        # The grader's server runs in their home, where nbgrader (the formgrader too) reads
        # ~/.jupyter/nbgrader_config.py: the course's configuration, from the course.
        (course.parent / ".jupyter").mkdir()
        (course.parent / ".jupyter" / "nbgrader_config.py").write_text(
            f"load_subconfig('nbgrader_config.py', path={str(course)!r})\n")
        for path in [course, *course.rglob("*"), *(course.parent / ".jupyter").rglob("*"),
                     course.parent / ".jupyter"]:
            os.chown(path, account.pw_uid, account.pw_gid)
        (course / "nbgrader_config_local.py").chmod(0o600)  # the database's password
        course.chmod(0o770)  # the service (root) shares what it writes here with the grader's
        # group (autograder.service.serve.shared_with_instructors): the formgrader replaces it
        self.nbgrader("generate_assignment", ASSIGNMENT, "--force")
        self.nbgrader("db", "student", "import", "roster.csv")
        self.nbgrader("release_assignment", ASSIGNMENT, "--force")
        (self.exchange / COURSE_ID / "inbound").chmod(0o3733)

    def write_config(self) -> None:
        settings = {"ENV": str(ENV), "RUN": str(self.run_dir), "COURSE": str(self.course),
                    "PORT": self.port, "HUB_PORT": free_port(),
                    "PROXY_API_PORT": free_port(), "GRADER": self.grader,
                    "STUDENTS": self.students}
        header = "".join(f"{name} = {value!r}\n" for name, value in settings.items())
        (self.run_dir / "jupyterhub_config.py").write_text(
            "# Written by `make hub` (autograder/hub.py): the settings, then its CONFIG.\n"
            + header + "\n" + CONFIG)

    @property
    def log_file(self) -> Path:
        return self.run_dir / "hub.log"

    def start(self, logged: bool = False, timeout: float = 120) -> None:
        """jupyterhub, as root, until it answers on its URL; its output (the proxy's, the
        servers' and the grading service's too) in log_file if logged."""
        # Its database (users, token hashes, the services' commands) is root's alone.
        (self.run_dir / "jupyterhub.sqlite").touch(mode=0o600)
        with open(self.log_file, "w") if logged else contextlib.nullcontext() as log:
            self.process = subprocess.Popen(
                [str(ENV / "venv" / "bin" / "jupyterhub"), "-f",
                 str(self.run_dir / "jupyterhub_config.py")], cwd=self.run_dir,
                env={**os.environ, "PATH": f"{ENV}/venv/bin:{os.environ['PATH']}"},
                stdout=log, stderr=subprocess.STDOUT if log else None, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/hub/health", timeout=5):
                    return
            except OSError as error:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise HubError(f"jupyterhub did not answer on {self.url} (exit "
                                   f"{self.process.poll()})\n{self.logs()}") from error
                time.sleep(0.2)

    def logs(self, lines: int = 40) -> str:
        """The end of log_file, and of the grading service's lines in it: what a failure's
        message shows."""
        if not self.log_file.is_file():
            return "(the hub's output is not logged)"
        text = self.log_file.read_text(errors="replace").splitlines()
        service = [line for line in text if SERVICE_LINE.match(line)]
        return (f"--- the hub's log ({self.log_file}), last {lines} lines:\n"
                + "\n".join(text[-lines:])
                + f"\n--- the grading service's lines, last {lines // 2}:\n"
                + "\n".join(service[-lines // 2:]))

    def stop(self, graceful: bool = True) -> None:
        """jupyterhub (it stops the users' servers, the proxy and the service), then
        PostgreSQL; not graceful (the tests' clean-up), the hub's processes are killed at
        once instead (stopped first, so that none starts another meanwhile)."""
        if self.process and self.process.poll() is None:
            if graceful:
                self.process.send_signal(signal.SIGTERM)
            else:
                for sent in (signal.SIGSTOP, signal.SIGKILL):
                    for pid in [self.process.pid, *descendants(self.process.pid)]:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, sent)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.stop_postgres()


def descendants(pid: int) -> list[int]:
    """The processes below pid, from /proc."""
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            parent = int(status.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(status.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def interrupt(signum, frame):
    """SIGTERM stops the hub as Ctrl-C does."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.hub", description=__doc__
                                     .split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--prefix", default="bp-", help="of the accounts' names")
    parser.add_argument("--run", type=Path, default=ENV / "run", help="the hub's state")
    args = parser.parse_args(argv)
    hub = Hub(args.run.absolute(), args.port, args.prefix)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    try:
        hub.setup()
        hub.start()
    except HubError as error:
        hub.stop()
        print(f"make hub: {error}", file=sys.stderr)
        return 1
    width = max(map(len, hub.accounts))
    print(f"\nJupyterHub is up after {time.monotonic() - started:.0f} s: {hub.url}\n"
          f"  {'account':<{width}}  password\n"
          + "".join(f"  {name:<{width}}  {password}"
                    f"{'   (grader: formgrader, course)' if name == hub.grader else ''}\n"
                    for name, password in hub.accounts.items())
          + f"course: {hub.course}   gradebook: PostgreSQL   exchange: {hub.exchange}\n"
          "Ctrl-C stops it.", flush=True)
    try:
        hub.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
