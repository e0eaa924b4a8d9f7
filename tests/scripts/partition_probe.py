"""Entry script: one "<index>|<partition_key_value>|<item id>" element per item.

An item with a true "bad" value makes run() raise.
"""


def run(mini_batch, mini_batch_context):
    key = ",".join(
        f"{k}={v}" for k, v in mini_batch_context.partition_key_value.items()
    )
    for item in mini_batch:
        if item.get("bad"):
            raise ValueError(f"bad item {item['id']}")
    return [
        f"{mini_batch_context.minibatch_index}|{key}|{item['id']}"
        for item in mini_batch
    ]
