"""Tasks: what the node layer asks of WaveSpeed, one blocking call per job, behind the facade.

The top layer of ``wavespeed/``: it may import every layer below it and nothing imports it but
the facade. Each call runs from its start to its end in one worker thread its host provides and
gets a TaskContext (context.py): the host's Cancel check, its status line, its user folder (the
journal's) and key files, so nothing here knows ComfyUI.

* ``paid/``: ``submit_task`` (submit.py), the one paid path: validation, the session budget,
  single-flight in the process and across processes, reuse, recovery, the POST through the
  account's scheduler and the journal record; ``afford`` (payment.py) for a Batch's whole price.
* accounts.py: the account's client, submit scheduler and poller; journals.py: which journal, and
  the notes a call writes to it without ever failing for them; handle.py: the TaskHandle a submit
  hands on.
"""
