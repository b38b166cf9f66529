"""Start-up hook of the no-network guard: see netguard.py beside it."""

import netguard

netguard.install()
