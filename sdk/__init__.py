"""What plugin authors import. The hook specifications arrive with the plugin SDK (issue 6).

``hookimpl`` marks a function as the implementation of a ``baton_*`` hook.
"""

import pluggy

hookimpl = pluggy.HookimplMarker("baton")

__all__ = ["hookimpl"]
