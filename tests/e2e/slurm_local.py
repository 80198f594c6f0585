"""A real single-node SLURM with accounting (munge, MariaDB, slurmdbd, slurmctld, slurmd) on
localhost, for tests: what real clusters run, so Snakemake's SLURM executor uses its default
`sacct` status queries with no overrides.

Daemons run as root from Debian's slurm-wlm, slurmdbd, munge and mariadb-server packages, with all
state under one temporary directory; `stop()` ends exactly the daemons `start()` began. The node
declares GPUs with /dev/null and the like as their devices so that a job asking for a GPU is accepted and
the request shows in `sacct`'s ReqTRES; nothing runs on a GPU. The node may declare more CPUs than
the machine has (`config_overrides`), as a cluster node has more than the submitting host.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

CONF = """\
ClusterName=local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={dbd_port}
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
GresTypes=gpu
MinJobAge=300
SchedulerParameters=sched_interval=1
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem}{gres} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
{partitions}"""

DBD_CONF = """\
AuthType=auth/munge
DbdHost=localhost
DbdPort={dbd_port}
SlurmUser=root
PidFile={d}/slurmdbd.pid
LogFile={d}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={db_port}
StorageUser=root
StorageLoc=slurm_acct_db
"""

# Job steps started inside a job (snakemake's slurm-jobstep plugin runs `srun` with SLURM_*
# variables removed, SLURM_CONF too) find the configuration only at the default path.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
FAKE_GPU_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/urandom")
PROGRAMS = (
    "slurmctld",
    "slurmd",
    "slurmdbd",
    "munged",
    "sbatch",
    "squeue",
    "sinfo",
    "sacct",
    "sacctmgr",
    "mariadbd",
    "mariadb-install-db",
)
ACCOUNT = "asteroid"


def available() -> str | None:
    """None when a local SLURM can start here, else the reason it cannot."""
    missing = [t for t in PROGRAMS if not shutil.which(t)]
    if missing:
        return (
            f"SLURM programs not installed ({', '.join(missing)}): "
            "apt-get install slurm-wlm slurmdbd munge mariadb-server"
        )
    if os.geteuid() != 0:
        return "a local slurmd must run as root"
    if SYSTEM_CONF.is_symlink() and not SYSTEM_CONF.exists():
        SYSTEM_CONF.unlink()  # left dangling by an earlier run of this test that was killed
    if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
        return f"{SYSTEM_CONF} exists: this machine has its own SLURM, which this test will not touch"
    return None


def _wait(check, timeout: float, what: str, log: Path) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not come up in {timeout:.0f} s; see {log}")


class LocalSlurm:
    def __init__(
        self,
        root: Path,
        cpus: int = 8,
        mem_mb: int = 16000,
        gpus: int = 1,
        port_base: int = 26817,
        partitions: dict[str, int] | None = None,
    ):
        """`partitions`: more partitions on the one node beside the default `debug`, name -> MaxTime
        in minutes."""
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.cpus, self.mem_mb, self.gpus = cpus, mem_mb, gpus
        self.partitions = dict(partitions or {})
        self.ports = {
            "ctld_port": port_base,
            "d_port": port_base + 1,
            "dbd_port": port_base + 2,
            "db_port": port_base + 3,
        }
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "USER": os.environ.get("USER", "root")}
        self.account = ACCOUNT
        self.pid_files: list[Path] = []
        self.mariadb: subprocess.Popen | None = None
        self.linked = False

    def _run(self, *cmd, **kw):
        return subprocess.run(list(cmd), check=True, env=self.env, capture_output=True, text=True, **kw)

    def start(self, timeout: float = 60) -> LocalSlurm:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        d = self.root
        for sub in ("state", "spool", "log", "munge", "db"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        # munge with its own key and socket under the temporary directory
        key = d / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        socket = d / "munge" / "munge.socket"
        self.pid_files.append(d / "munge" / "munged.pid")
        self._run(
            "munged",
            "--force",
            f"--key-file={key}",
            f"--socket={socket}",
            f"--pid-file={d}/munge/munged.pid",
            f"--log-file={d}/log/munged.log",
            f"--seed-file={d}/munge/seed",
        )
        auth = f"AuthInfo=socket={socket}\n"
        # AccountingStoragePass names the munge socket for connections to slurmdbd
        self.conf.write_text(
            CONF.format(
                d=d,
                cpus=self.cpus,
                mem=self.mem_mb,
                gres=f" Gres=gpu:{self.gpus}" if self.gpus else "",
                partitions="".join(
                    f"PartitionName={name} Nodes=localhost MaxTime={minutes} State=UP\n"
                    for name, minutes in self.partitions.items()
                ),
                **self.ports,
            )
            + auth
            + f"AccountingStoragePass={socket}\n"
        )
        # GPUs need a device file each to be counted; character devices that every machine has stand
        # in (task/none: nothing is fenced)
        (d / "gres.conf").write_text("".join(f"Name=gpu File={dev}\n" for dev in FAKE_GPU_DEVICES[: self.gpus]))
        dbd_conf = d / "slurmdbd.conf"
        dbd_conf.write_text(DBD_CONF.format(d=d, **self.ports) + auth)
        dbd_conf.chmod(0o600)

        # MariaDB, as root (the temporary directory is not readable by the mysql user), TCP on localhost
        db = d / "db"
        self._run(
            "mariadb-install-db",
            "--user=root",
            f"--datadir={db}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            timeout=120,
        )
        self.pid_files.append(d / "mariadb.pid")
        with open(d / "log" / "mariadb.log", "w") as log:
            self.mariadb = subprocess.Popen(
                [
                    "mariadbd",
                    "--no-defaults",
                    "--user=root",
                    f"--datadir={db}",
                    f"--socket={d}/mariadb.sock",
                    f"--pid-file={d}/mariadb.pid",
                    "--bind-address=127.0.0.1",
                    f"--port={self.ports['db_port']}",
                    "--innodb-buffer-pool-size=64M",
                    "--skip-log-bin",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        _wait(
            lambda: (d / "mariadb.sock").exists() and (d / "mariadb.pid").exists(),
            timeout,
            "MariaDB",
            d / "log" / "mariadb.log",
        )

        # slurmdbd before slurmctld; it creates its tables on first start
        self.pid_files.append(d / "slurmdbd.pid")
        self._run("slurmdbd")
        _wait(
            lambda: (
                subprocess.run(["sacctmgr", "-n", "show", "cluster"], env=self.env, capture_output=True).returncode == 0
            ),
            timeout,
            "slurmdbd",
            d / "log" / "slurmdbd.log",
        )
        self._run("sacctmgr", "-i", "add", "cluster", "local")
        self._run("sacctmgr", "-i", "add", "account", self.account, "Cluster=local")
        self._run("sacctmgr", "-i", "add", "user", self.env["USER"], f"Account={self.account}")

        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.symlink_to(self.conf)
        self.linked = True
        self.pid_files += [d / "slurmctld.pid", d / "slurmd.pid"]
        self._run("slurmctld")
        self._run("slurmd", "-N", "localhost")

        def idle():
            r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env)
            return r.returncode == 0 and set(r.stdout.split()) == {"idle"}  # one line per partition

        _wait(idle, timeout, "the SLURM node", d / "log")

    def sacct(self, fields: str) -> list[dict]:
        """Every job of the session from the accounting database, one dict per job (no steps)."""
        r = self._run(
            "sacct", "-X", "-a", "--parsable2", "--noheader", "--starttime", "now-1days", f"--format={fields}"
        )
        names = fields.split(",")
        return [dict(zip(names, line.split("|"))) for line in r.stdout.splitlines() if line]

    def stop(self) -> None:
        """End the daemons in reverse order of start; each by the PID it wrote."""
        for p in reversed(self.pid_files):
            try:
                pid = int(p.read_text())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.time() + 15
            while time.time() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
        self.pid_files = []
        if self.mariadb is not None:
            self.mariadb.wait(timeout=30)  # our child: reap it
            self.mariadb = None
        if self.linked and SYSTEM_CONF.is_symlink():
            SYSTEM_CONF.unlink()
            self.linked = False
