"""A process that uses UiPath's own Python SDK as UiPath's robots let it:
run by the example robot with UIPATH_URL, UIPATH_ACCESS_TOKEN (the run's
token) and UIPATH_ROBOT_KEY set. It reads a credential, reads and sets
its robot's value of a per-robot asset, and reports what it saw as the
run's outputs.
"""

import json

from uipath.platform import UiPath

sdk = UiPath()

password = sdk.assets.retrieve_credential("vault-login")
mine = sdk.assets.retrieve("counter")
before = mine.string_value
mine.string_value = "set by " + sdk._execution_context.robot_key
mine.value = mine.string_value
sdk.assets.update(mine)
after = sdk.assets.retrieve("counter").string_value
# A transaction, as UiPath's performer processes work queues.
taken = sdk.queues.create_transaction_item({"Name": "Batch"})
sdk.queues.complete_transaction_item(
    str(taken["Id"]), {"IsSuccessful": True, "Output": {"by": sdk._execution_context.robot_key}}
)
sdk.buckets.upload(name="Reports", blob_file_path="runs/report.txt", content="written by " + sdk._execution_context.robot_key)
print(
    "::output "
    + json.dumps(
        {"password": password, "before": before, "after": after, "transacted": taken["SpecificContent"]}
    )
)
