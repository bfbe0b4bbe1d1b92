"""Deploys template.yaml itself into a moto server, as the AWS-wire tests need.

Usage: deploy_to_moto.py ENDPOINT STACK_NAME   (run with the aws-sam-cli venv's python)
Prints the stack outputs as one JSON object on stdout.

SAM is translated to CloudFormation with aws-sam-translator (as `sam deploy`
does); function code is a placeholder zip in moto's S3 (moto cannot run the
functions; the test harness calls the handlers itself). Resources moto does
not create (HTTP API, secrets, alarms, queue policies) are tolerated; outputs
that point at them are replaced by placeholders. Event source mappings are
disabled right after the deploy so moto does not consume the queues.
"""
import io
import json
import os
import sys
import time
import zipfile

import boto3
from samcli.yamlhelper import yaml_parse
from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def client(name, endpoint):
    return boto3.client(
        name,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def main():
    endpoint, stack = sys.argv[1], sys.argv[2]
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(os.path.join(ROOT, "template.yaml")) as f:
        template = yaml_parse(f.read())

    s3 = client("s3", endpoint)
    bucket = "retailflow-code"
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\nexit 1\n")
    s3.put_object(Bucket=bucket, Key="code.zip", Body=buf.getvalue())
    for res in template["Resources"].values():
        if res["Type"] == "AWS::Serverless::Function":
            res["Properties"]["CodeUri"] = f"s3://{bucket}/code.zip"

    cfn_template = transform(template, {}, ManagedPolicyLoader(client("iam", endpoint)))
    # Outputs of resources moto skips would fail the stack: placeholders.
    for key, out in cfn_template.get("Outputs", {}).items():
        if "WebhookApi" in json.dumps(out["Value"]):
            out["Value"] = "https://webhook-api.invalid"

    cf = client("cloudformation", endpoint)
    cf.create_stack(StackName=stack, TemplateBody=json.dumps(cfn_template), Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"])
    for _ in range(120):
        st = cf.describe_stacks(StackName=stack)["Stacks"][0]
        if st["StackStatus"].endswith("_COMPLETE") or st["StackStatus"].endswith("_FAILED"):
            break
        time.sleep(0.5)
    if st["StackStatus"] != "CREATE_COMPLETE":
        events = cf.describe_stack_events(StackName=stack)["StackEvents"]
        reasons = [f'{e["LogicalResourceId"]}: {e.get("ResourceStatusReason")}' for e in events if "FAILED" in e["ResourceStatus"]]
        sys.exit(f"stack {st['StackStatus']}: {reasons}")

    lam = client("lambda", endpoint)
    for m in lam.list_event_source_mappings()["EventSourceMappings"]:
        lam.update_event_source_mapping(UUID=m["UUID"], Enabled=False)

    outputs = {o["OutputKey"]: o["OutputValue"] for o in st.get("Outputs", [])}
    print(json.dumps(outputs))


if __name__ == "__main__":
    main()
