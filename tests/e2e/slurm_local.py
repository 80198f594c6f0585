"""A real single-node SLURM (slurmctld + slurmd + munge) on localhost, for tests.

Daemons run as root from Debian's slurm-wlm and munge packages, with all state under one
temporary directory; `stop()` ends exactly the daemons `start()` began.
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
SlurmUser={user}
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
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
SchedulerParameters=sched_interval=1
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


# Job steps started inside a job (snakemake's slurm-jobstep plugin runs `srun` with SLURM_*
# variables removed, SLURM_CONF too) find the configuration only at the default path.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


def available() -> str | None:
    """None when a local SLURM can start here, else the reason it cannot."""
    missing = [t for t in ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "sinfo") if not shutil.which(t)]
    if missing:
        return f"SLURM programs not installed ({', '.join(missing)}): apt-get install slurm-wlm munge"
    if os.geteuid() != 0:
        return "a local slurmd must run as root"
    if SYSTEM_CONF.is_symlink() and not SYSTEM_CONF.exists():
        SYSTEM_CONF.unlink()  # left dangling by an earlier run of this test that was killed
    if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
        return f"{SYSTEM_CONF} exists: this machine has its own SLURM, which this test will not touch"
    return None


class LocalSlurm:
    def __init__(self, root: Path, cpus: int = 2, mem_mb: int = 16000):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.cpus, self.mem_mb = cpus, mem_mb
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "USER": os.environ.get("USER", "root")}
        self.munge_pid: int | None = None
        self.linked = False

    def start(self, timeout: float = 60) -> "LocalSlurm":
        d = self.root
        for sub in ("state", "spool", "log", "munge"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(CONF.format(d=d, user="root", cpus=self.cpus, mem=self.mem_mb,
                                         ctld_port=26817, d_port=26818))
        # munge with its own key and socket under the temporary directory
        key = d / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.socket = d / "munge" / "munge.socket"
        subprocess.run(["munged", "--force", f"--key-file={key}", f"--socket={self.socket}",
                        f"--pid-file={d}/munge/munged.pid", f"--log-file={d}/log/munged.log",
                        f"--seed-file={d}/munge/seed"], check=True, env=self.env)
        self.munge_pid = int((d / "munge" / "munged.pid").read_text())
        with open(self.conf, "a") as f:
            f.write(f"AuthInfo=socket={self.socket}\n")
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.symlink_to(self.conf)
        self.linked = True
        subprocess.run(["slurmctld"], check=True, env=self.env)
        subprocess.run(["slurmd", "-N", "localhost"], check=True, env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env)
            if r.returncode == 0 and r.stdout.strip() == "idle":
                return self
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"local SLURM did not become idle in {timeout} s; see {d}/log")

    def stop(self) -> None:
        for pid_file in ("slurmd.pid", "slurmctld.pid"):
            p = self.root / pid_file
            if p.exists():
                try:
                    os.kill(int(p.read_text()), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass
        if self.munge_pid:
            try:
                os.kill(self.munge_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.linked and SYSTEM_CONF.is_symlink():
            SYSTEM_CONF.unlink()
            self.linked = False
