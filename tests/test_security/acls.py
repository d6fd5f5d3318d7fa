"""ACLs on the secure test broker: the README's list for the worker, granted over the Kafka protocol.

aiokafka has the CreateAcls request but no admin call for it, and Kafka's own kafka-acls
tool is not among the broker's jars, so the harness sends the request itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest

README = Path(__file__).resolve().parents[2] / "README.md"

# Kafka's wire codes (org.apache.kafka.common.resource.ResourceType, PatternType, acl.AclOperation).
RESOURCE_TYPES = {"topic": 2, "group": 3, "cluster": 4, "transactional-id": 5}
PATTERN_TYPES = {"literal": 3, "prefixed": 4}
OPERATIONS = {"All": 2, "Read": 3, "Write": 4, "Create": 5, "Delete": 6, "Alter": 7, "Describe": 8,
              "ClusterAction": 9, "DescribeConfigs": 10, "AlterConfigs": 11, "IdempotentWrite": 12}
ALLOW = 3


@dataclass(frozen=True)
class Acl:
    resource: str
    name: str
    pattern: str
    operation: str


def readme_acls(prefix: str) -> list[Acl]:
    """The worker's ACLs as the README's Security section lists them, for topics named `prefix`..."""
    section = README.read_text().split("<!-- worker-acls -->")[1]
    acls = []
    for row in re.findall(r"^\| (\w[\w-]*) \| `([^`]*)` \| (\w+) \| ([\w, ]+) \|$", section, re.MULTILINE):
        resource, name, pattern, operations = row
        for operation in operations.split(", "):
            acls.append(Acl(resource.lower(), name.replace("web2app.", prefix), pattern, operation))
    assert acls, "the README lists no ACLs between its <!-- worker-acls --> markers"
    return acls


async def grant(bootstrap: str, principal: str, acls: list[Acl]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for acl in acls:
            response = await admin._send_request(CreateAclsRequest(
                RESOURCE_TYPES[acl.resource], acl.name, PATTERN_TYPES[acl.pattern], principal, "*",
                OPERATIONS[acl.operation], ALLOW))
            [(error_code, error_message)] = response.creation_responses
            assert error_code == 0, f"{acl}: {error_message}"
    finally:
        await admin.close()
