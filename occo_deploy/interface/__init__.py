"""The backend interface: what a backend module declares (``spec``), the rules' types (``checks``)
and the shape profiles engines hold (``profile``). It sits below every backend and names none."""
