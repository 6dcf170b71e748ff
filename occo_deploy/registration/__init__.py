"""Registration of a camera rig: ``occo-deploy align`` estimates it, ``--align`` applies it (``Rig``)."""

from occo_deploy.registration.rig import MODELS, Rig

__all__ = ["MODELS", "Rig"]
