"""Entry script: one "<index>|<partition_key_value>|<item id>" element per item."""


def run(mini_batch, mini_batch_context):
    key = ",".join(
        f"{k}={v}" for k, v in mini_batch_context.partition_key_value.items()
    )
    return [
        f"{mini_batch_context.minibatch_index}|{key}|{item['id']}"
        for item in mini_batch
    ]
