"""The one exception type a user of softac can cause and is expected to read."""


class SoftacError(ValueError):
    """A problem with the user's input (env id, config, checkpoint, data), stated in one sentence.

    The CLI prints the message without a traceback and exits with status 2.
    """
