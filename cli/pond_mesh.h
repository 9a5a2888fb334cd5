/*  pond_mesh: the commands of `pond` that run a whole mesh, and what they
    share.

    pond_cmd_mesh.c     up, down, status: the supervisor and its processes
    pond_cmd_actors.c   query, rebuild, verify, recompute: the actors
    pond_demo.c         demo: the story of DESIGN.md from start to end

    Each command follows pond_cli.h: `int pond_cmd_NAME (argc, argv)` plus
    its help, listed in the table of cli/pond.c.
*/
#ifndef POND_MESH_H_INCLUDED
#define POND_MESH_H_INCLUDED

#include "pond_cli.h"
#include "pond_views.h"

//  The four actors, in start order, and how many (client/pond_views)
#define POND_MESH_ACTORS POND_VIEWS
#define pond_mesh_actors pond_views_actors

//  ---------------------------------------------------------------------
//  The commands

//  pond_cmd_mesh.c
int
    pond_cmd_up (int argc, char *argv []);
void
    pond_cmd_up_help (FILE *out);
int
    pond_cmd_down (int argc, char *argv []);
void
    pond_cmd_down_help (FILE *out);
int
    pond_cmd_status (int argc, char *argv []);
void
    pond_cmd_status_help (FILE *out);

//  pond_cmd_actors.c
int
    pond_cmd_query (int argc, char *argv []);
void
    pond_cmd_query_help (FILE *out);
int
    pond_cmd_rebuild (int argc, char *argv []);
void
    pond_cmd_rebuild_help (FILE *out);
int
    pond_cmd_verify (int argc, char *argv []);
void
    pond_cmd_verify_help (FILE *out);
int
    pond_cmd_recompute (int argc, char *argv []);
void
    pond_cmd_recompute_help (FILE *out);

//  pond_demo.c
int
    pond_cmd_demo (int argc, char *argv []);
void
    pond_cmd_demo_help (FILE *out);

//  pond_cmd_commands.c: commands through the broker, and their status
int
    pond_cmd_command (int argc, char *argv []);
void
    pond_cmd_command_help (FILE *out);

//  How pond recompute and pond rebuild send their command
typedef struct {
    bool no_wait;      //  print the id and return
    bool json;         //  print the whole final status, not the result
    const char *id;    //  the command's id (a UUID), else a new one
} pond_cmd_command_options_t;

//  Send command (view, args) to the broker; print its id; unless
//  no_wait, follow it (what names it in progress lines) until done (the
//  result to stdout, or into *result_p when result_p is given: caller
//  frees) or failed. cli->timeout_ms is how long it may go without
//  moving. Returns the exit code.
int
    pond_cmd_run_command (pond_cli_t *cli, const char *command, const char *view, const char *args,
                          const pond_cmd_command_options_t *options, const char *what,
                          char **result_p);

//  ---------------------------------------------------------------------
//  Shared helpers (pond_cmd_mesh.c)

//  Separate argv (argv [0] is the command) into options, kept in order in
//  opts (opts [0] = argv [0]; room for argc + 1 pointers, NULL-terminated)
//  and positional arguments, copied to args (room for argc pointers). The
//  values of options that take one (per options, long names may be
//  abbreviated as getopt allows) stay with their option; "--" ends the
//  options. Sets *opts_count and *args_count.
void
    pond_mesh_split_args (int argc, char *argv [], const struct option *options, char **opts,
                          int *opts_count, char **args, int *args_count);

//  The directory of the running pond binary (from /proc/self/exe), where
//  the other binaries of the build are. Returns 0, or -1.
int
    pond_mesh_bin_dir (char *dir, size_t size);

//  The actor a view name or alias means: quack-counter or quacks,
//  badge-granter or badges, alexa-view or alexa, mobile-view or mobile.
//  Returns the actor's name, or NULL.
const char *
    pond_mesh_actor_name (const char *view);

//  Print JSON text to out: pretty (two-space indents, each line after
//  indent) or as it is; text that is not JSON is printed as it is.
//  (pond_cmd_actors.c)
void
    pond_mesh_print_json (FILE *out, const char *json, bool pretty, const char *indent);

//  Print the last lines of a file to out, each after indent.
void
    pond_mesh_print_tail (const char *path, int lines, const char *indent, FILE *out);

//  A child process whose output is collected
typedef struct {
    pid_t pid;         //  0 if it could not start
    int fds [2];       //  read ends for stdout, stderr; -1 once closed
    char *text [2];    //  what came on stdout, stderr ("" if nothing)
    size_t size [2];
    int status;    //  wait status, once finished
} pond_mesh_child_t;

//  Start the program at path with argv (argv [0] is its name), stdin from
//  /dev/null, stdout collected, stderr collected too unless inherit_stderr.
//  Returns 0, or -1 (then pid is 0).
int
    pond_mesh_child_start (pond_mesh_child_t *self, const char *path, char *const argv [],
                           bool inherit_stderr);

//  Collect the output of count children until all have closed it, then
//  reap them. After timeout_ms, children still running get SIGKILL.
//  Returns 0, or -1 if the timeout struck.
int
    pond_mesh_children_finish (pond_mesh_child_t *children, size_t count, int timeout_ms);

//  A finished child's exit code, or -1 if it did not start or was killed.
int
    pond_mesh_child_exit (pond_mesh_child_t *self);

//  Free what was collected.
void
    pond_mesh_child_free (pond_mesh_child_t *self);

//  Stop the mesh of data_dir as `pond down` does. Returns an exit code:
//  0 once it is down, 1 if it was not running or did not stop in time.
int
    pond_mesh_down (pond_cli_t *cli, const char *data_dir);

#endif
