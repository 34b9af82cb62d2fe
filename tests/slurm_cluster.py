"""A real one-node SLURM cluster for the tests, from Debian's packages (make setup-slurm), run as root.

    with SlurmCluster() as cluster:      # munged, mariadbd, slurmdbd, slurmctld, slurmd on this machine
        subprocess.run(["sbatch", ...], env=cluster.env)

Everything lives under one temporary directory (configs, sockets, database, spool, state, logs) on
free local ports, so it never touches /etc/slurm or a system munge/mysql; clients find it through
SLURM_CONF (set in `cluster.env`, and in os.environ by the pytest fixture, for submitit's sbatch and
sacct calls). Accounting is real (slurmdbd on MariaDB): submitit reads job states only through `sacct`,
so without it a finished or cancelled job is never seen to end. The node is described by `slurmd -C`
(this machine's CPUs and memory). Stopping cancels every job, then ends the daemons this object
started, by pid, and removes the directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd", "sacctmgr", "sbatch")
CLUSTER = "pipetest"
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")


def unavailable() -> str | None:
    """Why a cluster cannot start here (a skip message), or None."""
    if os.geteuid() != 0:
        return "the one-node SLURM cluster needs root (its daemons run as root)"
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if missing:
        return f"SLURM packages missing ({', '.join(missing)}): run `make setup-slurm` as root"
    if MUNGE_SOCKET.exists():
        return f"{MUNGE_SOCKET} exists: a munged already runs here (a real cluster's node?); the test cluster needs its own"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exe(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class SlurmCluster:
    def __init__(self, start_timeout: float = 60.0):
        self.start_timeout = start_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="slurm-"))
        self.procs: list[subprocess.Popen] = []
        self.host = socket.gethostname().split(".")[0]
        self.env = {**os.environ, "SLURM_CONF": str(self.dir / "slurm.conf")}
        self.start_s: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> "SlurmCluster":
        t0 = time.time()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.start_s = time.time() - t0
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.dir / f"{name}.out", "w")
        p = subprocess.Popen([_exe(name), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def _wait(self, what: str, pred, proc: subprocess.Popen | None = None) -> None:
        deadline = time.time() + self.start_timeout
        while not pred():
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{what}: daemon exited ({proc.returncode}); log:\n{self.logs()}")
            if time.time() > deadline:
                raise RuntimeError(f"{what}: not ready within {self.start_timeout:.0f} s; log:\n{self.logs()}")
            time.sleep(0.3)

    def _run(self, *cmd: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run([_exe(cmd[0]), *cmd[1:]], env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr or res.stdout}")
        return res

    def logs(self, tail: int = 2000) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-tail:]}"
                         for p in sorted(self.dir.glob("*.out")) + sorted(self.dir.glob("*.log")))

    def _start(self) -> None:
        d = self.dir
        for sub in ("state", "spool", "db"):
            (d / sub).mkdir()
        # munge: a fresh key, on munge's default socket: Slurm's clients (sacctmgr's connection to
        # slurmdbd) do not all honour AuthInfo=socket=, so a private socket would not do.
        (d / "munge.key").write_bytes(os.urandom(1024))
        os.chmod(d / "munge.key", 0o400)
        munge_sock = MUNGE_SOCKET
        if munge_sock.exists():
            raise RuntimeError(f"{munge_sock} exists: another munged runs here (stop it, or remove a stale socket)")
        munge_sock.parent.mkdir(mode=0o755, exist_ok=True)
        self._spawn("munged", "-F", "--force", f"--socket={munge_sock}", f"--key-file={d / 'munge.key'}",
                    f"--pid-file={d / 'munged.pid'}", f"--log-file={d / 'munged.log'}",
                    f"--seed-file={d / 'munged.seed'}")
        self._wait("munged", munge_sock.exists, self.procs[-1])

        # MariaDB for slurmdbd, on a private datadir and a local TCP port
        db_port, db_sock = _free_port(), d / "mysql.sock"
        self._run("mariadb-install-db", f"--datadir={d / 'db'}", "--user=root", "--skip-test-db",
                  "--auth-root-authentication-method=socket", timeout=120)
        db = self._spawn("mariadbd", "--no-defaults", "--user=root", f"--datadir={d / 'db'}",
                         f"--socket={db_sock}", f"--port={db_port}", "--bind-address=127.0.0.1",
                         f"--pid-file={d / 'mysql.pid'}", "--innodb-buffer-pool-size=64M")
        self._wait("mariadbd", db_sock.exists, db)
        sql = ("CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';"
               "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;")
        self._run("mariadb", "--no-defaults", f"--socket={db_sock}", "-uroot", "-e", sql)

        dbd_port, ctld_port, slurmd_port = _free_port(), _free_port(), _free_port()
        auth = "AuthType=auth/munge\n"
        # slurmdbd reads slurmdbd.conf beside $SLURM_CONF; it must be 0600 and owned by SlurmUser.
        (d / "slurmdbd.conf").write_text(
            f"{auth}DbdHost=localhost\nDbdAddr=127.0.0.1\nDbdPort={dbd_port}\nSlurmUser=root\n"
            f"PidFile={d / 'slurmdbd.pid'}\nLogFile={d / 'slurmdbd.log'}\n"
            f"StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\nStoragePort={db_port}\n"
            "StorageUser=slurm\nStoragePass=slurm\nStorageLoc=slurm_acct_db\n")
        os.chmod(d / "slurmdbd.conf", 0o600)
        node = self._run("slurmd", "-C").stdout.splitlines()[0]  # "NodeName=... CPUs=... RealMemory=..."
        (d / "slurm.conf").write_text(
            f"ClusterName={CLUSTER}\nSlurmctldHost={self.host}(127.0.0.1)\nSlurmUser=root\n{auth}"
            f"SlurmctldPort={ctld_port}\nSlurmdPort={slurmd_port}\n"
            f"StateSaveLocation={d / 'state'}\nSlurmdSpoolDir={d / 'spool'}\n"
            f"SlurmctldPidFile={d / 'slurmctld.pid'}\nSlurmdPidFile={d / 'slurmd.pid'}\n"
            f"SlurmctldLogFile={d / 'slurmctld.log'}\nSlurmdLogFile={d / 'slurmd.log'}\n"
            # no cgroup hierarchy to rely on in a container: track processes by parentage
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n"
            "MpiDefault=none\nReturnToService=2\nSchedulerType=sched/backfill\n"
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n"
            f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\n"
            f"AccountingStoragePort={dbd_port}\nJobCompType=jobcomp/none\n"
            "InactiveLimit=0\nKillWait=5\nMinJobAge=30\nSlurmctldTimeout=30\nSlurmdTimeout=30\n"
            f"{node} NodeAddr=127.0.0.1 State=UNKNOWN\n"
            f"PartitionName=debug Nodes={node.split()[0].split('=')[1]} Default=YES MaxTime=INFINITE State=UP\n")

        dbd = self._spawn("slurmdbd", "-D")
        self._wait("slurmdbd", lambda: self._run("sacctmgr", "-n", "list", "cluster", check=False,
                                                 timeout=10).returncode == 0, dbd)
        self._run("sacctmgr", "-i", "add", "cluster", CLUSTER)
        ctld = self._spawn("slurmctld", "-D", "-i")
        self._wait("slurmctld", lambda: self._run("scontrol", "ping", check=False, timeout=10).returncode == 0, ctld)
        slurmd = self._spawn("slurmd", "-D")
        self._wait("srun hostname", lambda: slurmd.poll() is None and self._run(
            "srun", "-N1", "-t", "1", "--immediate=5", "hostname", check=False, timeout=20).returncode == 0, slurmd)

    def sacct(self, *args: str) -> list[dict[str, str]]:
        """Rows of `sacct -X -P --format=JobIDRaw,JobID,JobName,State,ExitCode` (plus `args`), as dicts.
        JobIDRaw is a job's own id (SLURM_JOB_ID inside it); JobID names an array task `<array>_<index>`."""
        out = self._run("sacct", "-X", "-P", "-a", "--format=JobIDRaw,JobID,JobName,State,ExitCode", *args).stdout
        lines = [ln for ln in out.splitlines() if ln]
        return [dict(zip(lines[0].split("|"), ln.split("|"))) for ln in lines[1:]] if lines else []

    def stop(self) -> None:
        if any(p.poll() is None for p in self.procs):
            try:  # jobs first, so slurmd ends their steps before it goes
                self._run("scancel", "-u", "root", check=False, timeout=10)
                time.sleep(1)
            except (subprocess.TimeoutExpired, OSError):
                pass
        for p in reversed(self.procs):  # slurmd first, munged last
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
