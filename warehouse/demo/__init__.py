"""The demo study: a synthetic ADRESS-like randomised trial, exported as REDCap and CDISC ODM (docs/demo-study.md).

    from warehouse.demo import generate_demo
    res = generate_demo(Path("data/demo"), subjects=32, seed=20190515, inject_rate=0.0)
"""

from .generate import DemoExport, generate_demo
from .params import DemoParameters

__all__ = ["DemoExport", "DemoParameters", "generate_demo"]
