"""Load signals for the fraud switch: this process's CPU use and, where NVML is present, the
GPU's utilisation. Kept out of the pure switch because they read the OS."""

from __future__ import annotations

import time


class LoadProbe:
    def __init__(self, every_s: float = 0.25):
        self.every = every_s
        self._t = time.monotonic()
        self._cpu = time.process_time()
        self.cpu = 0.0
        self.gpu: float | None = None
        self._nvml = None
        try:  # optional: only where an NVIDIA driver and pynvml exist
            import pynvml

            pynvml.nvmlInit()
            self._nvml = (pynvml, pynvml.nvmlDeviceGetHandleByIndex(0))
        except Exception:
            self._nvml = None

    def sample(self) -> tuple[float, float | None]:
        now = time.monotonic()
        if now - self._t >= self.every:
            c = time.process_time()
            self.cpu = min((c - self._cpu) / (now - self._t), 1.0)
            self._t, self._cpu = now, c
            if self._nvml is not None:
                try:
                    nv, h = self._nvml
                    self.gpu = nv.nvmlDeviceGetUtilizationRates(h).gpu / 100.0
                except Exception:
                    self.gpu = None
        return self.cpu, self.gpu
