"""UiPath's own Python SDK against this server, unmodified.

Run by tests/uipath_sdk.rs with UIPATH_URL (http://host:port/org/tenant)
and UIPATH_ACCESS_TOKEN set, a robot connected, and the processes of that
test's configuration. Exits non-zero on the first thing that differs.
"""

import json
import os
import tempfile
import time

from uipath.platform import UiPath

sdk = UiPath()


def wait(key, state):
    deadline = time.time() + 30
    while True:
        job = sdk.jobs.retrieve(key, folder_path="Default")
        if job.state == state:
            return job
        assert time.time() < deadline, f"job {key} stays {job.state}, not {state}"
        time.sleep(0.1)


# A process started with input arguments, followed to its end.
job = sdk.processes.invoke("Invoice", {"invoice": 7}, folder_path="Default")
assert isinstance(job.id, int) and len(job.key) == 36, job
done = wait(job.key, "Successful")
assert '"invoice":7' in done.input_arguments, done.input_arguments
assert '"total":7' in done.output_arguments.replace(" ", ""), done.output_arguments
print("invoked and finished", done.id, done.key)

# Listed with a filter.
page = sdk.jobs.list(folder_path="Default", filter="State eq 'Successful'", top=10)
assert any(j.key == job.key for j in page.items), page
print("listed", len(page.items))

# A slow one, stopped.
slow = sdk.processes.invoke("Invoice", {"invoice": 99}, folder_path="Default")
wait(slow.key, "Running")
sdk.jobs.stop(job_keys=[slow.key], strategy="SoftStop", folder_path="Default")
wait(slow.key, "Stopped")
print("stopped", slow.key)

# A queue item.
item = sdk.queues.create_item(
    {"Name": "Claims", "Priority": "High", "Reference": "C-9", "SpecificContent": {"claim": "C-9"}},
    folder_path="Default",
)
print("queued", item)

# A transaction, as a robot process works one: created with its content,
# then completed.
started = sdk.queues.create_transaction_item(
    {"Name": "Claims", "SpecificContent": {"claim": "T-1"}}, no_robot=True, folder_path="Default"
)
assert started["Status"] == "InProgress", started
sdk.queues.update_progress_of_transaction_item(str(started["Id"]), "checked", folder_path="Default")
sdk.queues.complete_transaction_item(
    str(started["Id"]), {"IsSuccessful": True, "Output": {"paid": True}}, folder_path="Default"
)
print("transaction", started["Id"])

# An asset, read by name.
asset = sdk.assets.retrieve("greeting", folder_path="Default")
assert asset.value == "hello" and asset.value_type == "Text", asset
print("asset", asset.name)

# A credential: never to a person ...
try:
    sdk.assets.retrieve_credential("vault-login", folder_path="Default")
    raise AssertionError("a person got a credential")
except ValueError as e:
    assert "AllowDirectApiAccess" in str(e), e
listed = sdk.assets.retrieve("vault-login", folder_path="Default")
assert listed.credential_username == "svc" and listed.credential_password is None, listed
# ... but to the process a robot runs, through its run token; that
# process also works an item of a queue as a transaction.
sdk.queues.create_item({"Name": "Batch", "Reference": "R-1", "SpecificContent": {"n": 5}}, folder_path="Default")
vault = sdk.processes.invoke("Vault", {}, folder_path="Default")
out = json.loads(wait(vault.key, "Successful").output_arguments)
assert out == {
    "password": "s3cret-vault",
    "before": "unset",
    "after": "set by robot-1",
    "transacted": {"n": 5},
}, out
print("credential read by the robot")

# The robot's run wrote a file into a bucket; a person reads it.
files = sdk.buckets.list_files(name="Reports", prefix="runs", folder_path="Default")
assert [f.path for f in files.items] == ["runs/report.txt"], files
found = sdk.buckets.get_files(name="Reports", prefix="/runs", folder_path="Default")
assert [f.path for f in found.items] == ["runs/report.txt"], found
target = os.path.join(tempfile.mkdtemp(), "report.txt")
sdk.buckets.download(name="Reports", blob_file_path="runs/report.txt", destination_path=target, folder_path="Default")
with open(target) as f:
    assert f.read() == "written by robot-1"
print("bucket file read")
print("ok")
