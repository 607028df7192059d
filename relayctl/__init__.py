"""relayctl: the operator's tool for a deployed (or local) reschedule relay.

It talks to the same AWS resources the functions use, through boto3 and the standard AWS
configuration (profile, region, `AWS_ENDPOINT_URL_*`), and uses the relay's own code to parse the
sources registry, mint links and read attempts, so it can never disagree with what the relay does.
"""
