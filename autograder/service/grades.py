"""nbgrader's GetGrades for the feedback processes, with the gradebook kept open."""

from nbgrader.api import Gradebook
from nbgrader.preprocessors import GetGrades, NbGraderPreprocessor

_GRADEBOOKS: dict[str, Gradebook] = {}  # db_url -> its gradebook, in this process


class GradesFromKeptGradebook(GetGrades):
    """nbgrader's GetGrades, its gradebook opened once a process instead of once a page.

    A Gradebook's start (a new database engine, every table checked, the course looked up)
    and the queries compiled again for each new engine were a third of a feedback page's
    cost. Each page reads in a session of its own, ended after it, so it sees everything
    committed before it; a page whose reading fails drops the gradebook, and the next one
    opens it again. The queries and what they fill in are nbgrader's own
    (`GetGrades.preprocess`, whose steps this repeats)."""

    def preprocess(self, nb, resources):
        self.notebook_id = resources["nbgrader"]["notebook"]
        self.assignment_id = resources["nbgrader"]["assignment"]
        self.student_id = resources["nbgrader"]["student"]
        self.db_url = resources["nbgrader"]["db_url"]
        if self.db_url not in _GRADEBOOKS:
            _GRADEBOOKS[self.db_url] = Gradebook(self.db_url)
        self.gradebook = _GRADEBOOKS[self.db_url]
        try:
            nb, resources = NbGraderPreprocessor.preprocess(self, nb, resources)
            notebook = self.gradebook.find_submission_notebook(
                self.notebook_id, self.assignment_id, self.student_id)
            late_penalty = notebook.late_submission_penalty
            if late_penalty is None:
                late_penalty = 0
            else:
                self.log.warning(f"Late submission penalty: {late_penalty}")
            resources["nbgrader"]["score"] = notebook.score - late_penalty
            resources["nbgrader"]["max_score"] = notebook.max_score
            resources["nbgrader"]["late_penalty"] = late_penalty
        except BaseException:
            _GRADEBOOKS.pop(self.db_url).close()
            raise
        finally:
            self.gradebook.db.remove()
        return nb, resources
