#!/usr/bin/env python3
"""A real S3 endpoint for the tests: moto in server mode on 127.0.0.1:PORT, with signature
checking on (after its first requests, which create an IAM user and that user's access key).

    moto-s3.py PORT [--no-auth]

With --no-auth nothing is checked (moto cannot check presigned URLs: it answers them 500 with
checking on) and the key printed is moto's default. Prints one JSON line, {"key": ..., "secret": ...}, once the endpoint checks signatures, then
serves until killed.
"""
import json
import os
import sys
import time

checked = "--no-auth" not in sys.argv
# Requests after the first three must be signed with a key IAM knows: the user below.
if checked:
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
from moto.server import ThreadedMotoServer  # noqa: E402
import boto3  # noqa: E402

port = int(sys.argv[1])
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
endpoint = "http://127.0.0.1:%d" % port
if not checked:
    print(json.dumps({"key": "testing", "secret": "testing"}), flush=True)
    while True:
        time.sleep(3600)
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="drydock")
iam.put_user_policy(UserName="drydock", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="drydock")["AccessKey"]
print(json.dumps({"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}), flush=True)
while True:
    time.sleep(3600)
