"""Set a GlobalCommand's fields by name, `frame_id` meaning its header's (tests that vary one field)."""


def with_fields(msg, **fields):
    for name, value in fields.items():
        if name == "frame_id":
            msg.header.frame_id = value
        else:
            setattr(msg, name, value)
    return msg
