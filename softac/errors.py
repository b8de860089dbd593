"""The one exception type a user of softac can cause and is expected to read."""


class SoftacError(ValueError):
    """A problem with the user's input (env id, config, checkpoint, data), stated in one sentence.

    The CLI prints the message without a traceback and exits with status 2.
    """


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by SIGINT (Ctrl-C) or SIGTERM after a checkpoint of every seed at `step`.

    A KeyboardInterrupt, so code that handles Ctrl-C keeps working; `exit_status` is 128 + the signal
    number (130 for SIGINT, 143 for SIGTERM), the status a shell reports for a process stopped by it.
    """

    def __init__(self, signum: int, step: int, run_dirs: list):
        import shlex
        import signal

        self.signum, self.step, self.run_dirs = signum, step, list(run_dirs)
        self.resume_command = "softac train --resume " + " ".join(shlex.quote(str(d)) for d in self.run_dirs)
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} at env step {step} with a checkpoint of every seed; "
                         f"continue with: {self.resume_command}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class TrialsInterrupted(KeyboardInterrupt):
    """A sweep's or benchmark's Ray Tune trials were interrupted (Ctrl-C on the driver) before every trial
    ended; the message says how to continue. The CLI prints it and exits with status 130."""
