/*  pond_cmd_keys: the CURVE keys of a mesh (pond_keys.h).

    keys new     make a key pair for the broker, a device, an actor, an app
                 or the admin, with its role and customers
    keys list    show the keys a broker would let in
    keys remove  take a key out: servers refuse it within seconds
    keys token   issue a bearer token for a key, for HTTP clients of
                 pond-gateway (pond_tokens.h); revoke-token takes them back

    The keys directory is --keys DIR, else $POND_KEYS, else DATA/keys.
*/
#include "pond_cli.h"
#include "pond_keys.h"
#include "pond_tokens.h"

#include <limits.h>
#include <string.h>

#define CUSTOMERS_MAX 64

void
pond_cmd_keys_help (FILE *out)
{
    fprintf (out,
             "Usage: pond keys new --role ROLE --name NAME [--customer ID]...\n"
             "       pond keys list\n"
             "       pond keys remove --name NAME\n"
             "       pond keys token NAME\n"
             "       pond keys revoke-token NAME\n"
             "\n"
             "Over a real network every socket of a mesh uses CURVE: each process has a\n"
             "key pair, and servers only let in the public keys of their keys directory.\n"
             "  new      make key pair NAME: DIR/public/NAME.cert (role, name, customers;\n"
             "           every server reads it) and DIR/secret/NAME.cert_secret (copy it\n"
             "           only to where NAME runs)\n"
             "  list     the keys of DIR/public, with their role and customers\n"
             "  remove   delete key NAME; a broker refuses it within seconds, even on\n"
             "           connections already open (its tokens go with it)\n"
             "  token    issue a bearer token for key NAME (app, device or admin) and\n"
             "           print it (only it, on stdout): HTTP clients of pond-gateway\n"
             "           --keys send it as 'Authorization: Bearer TOKEN' and are served\n"
             "           as key NAME, with its rules. Only a hash is kept, in\n"
             "           DIR/tokens/NAME; a key may have several tokens. The gateway\n"
             "           uses DIR/secret/NAME.cert_secret, so issue tokens in its\n"
             "           keys directory\n"
             "  revoke-token  revoke every token of key NAME: the gateway answers 401\n"
             "           to them from the next request\n"
             "\n"
             "Roles: broker (its key is named broker), store (named store: the store\n"
             "link takes only the broker's key), device (publishes only for its\n"
             "customers), app (queries actors; publishes only for its customers), actor\n"
             "(publishes for anyone, catches up with REPLAY, serves queries), admin\n"
             "(everything: the control socket is the admin's).\n"
             "\n"
             "  --role ROLE       broker, store, device, app, actor or admin\n"
             "  --name NAME       letters, digits, '.', '_', '-' (1 to %d); it becomes the\n"
             "                    source the broker stamps on the key's events\n"
             "  --customer ID     a customer (entity) the key is bound to; repeat for more;\n"
             "                    device keys need at least one\n"
             "  --keys DIR        the keys directory (default $POND_KEYS, else DATA/keys)\n"
             "\n"
             "Example:\n"
             "  pond keys new --role broker\n"
             "  pond keys new --role store\n"
             "  pond keys new --role admin --name admin\n"
             "  pond keys new --role device --name silo-1 --customer anna --customer ben\n"
             "  pond-store --keys ./pond-data/keys --endpoint tcp://127.0.0.1:7000\n"
             "  pond-broker --keys ./pond-data/keys --store tcp://127.0.0.1:7000 \\\n"
             "      --ingest tcp://127.0.0.1:7001 ...\n"
             "  pond publish --keys ./pond-data/keys --as silo-1 --name QUACKED --entity anna\n"
             "  pond keys new --role app --name app-1 --customer anna\n"
             "  TOKEN=$(pond keys token app-1)\n"
             "  curl -H \"Authorization: Bearer $TOKEN\" $GATEWAY/v1/views/mobile/anna\n"
             "  pond keys revoke-token app-1\n"
             "\n" POND_CLI_COMMON_HELP,
             POND_KEY_NAME_MAX);
}

//  The keys directory: --keys, $POND_KEYS (pond_cli_getopt), else DATA/keys.
static const char *
s_keys_dir (pond_cli_t *cli, char *buffer, size_t size)
{
    if (cli->keys)
        return cli->keys;
    snprintf (buffer, size, "%s/keys", cli->eps.data_dir);
    return buffer;
}

//  pond keys new
static int
s_new (pond_cli_t *cli, const char *dir, const char *role, const char *name, const char **customers,
       size_t count)
{
    char err [1024];
    if (!role)
        return pond_cli_usage (cli, "new: --role ROLE is required (broker, store, device, "
                                    "app, actor or admin)");
    if (!pond_keys_role_valid (role))
        return pond_cli_usage (cli,
                               "new: unknown role '%s' (broker, store, device, app, "
                               "actor or admin)",
                               role);
    if (!name && streq (role, "broker"))
        name = POND_KEYS_BROKER;
    if (!name && streq (role, "store"))
        name = POND_KEYS_STORE;
    if (!name)
        return pond_cli_usage (cli, "new: --name NAME is required");
    if (pond_keys_check_name (name, err, sizeof err))
        return pond_cli_usage (cli, "new: '%s': %s", name, err);
    if (streq (role, "broker") != streq (name, POND_KEYS_BROKER))
        return pond_cli_usage (cli, "new: the broker's key, and only it, is named '%s'",
                               POND_KEYS_BROKER);
    if (streq (role, "store") != streq (name, POND_KEYS_STORE))
        return pond_cli_usage (cli, "new: the store's key, and only it, is named '%s'",
                               POND_KEYS_STORE);
    bool bound = streq (role, "device") || streq (role, "app");
    if (count && !bound)
        return pond_cli_usage (cli, "new: only device and app keys have --customer");
    if (streq (role, "device") && count == 0)
        return pond_cli_usage (cli, "new: a device key is bound to at least one customer: "
                                    "--customer ID");
    for (size_t i = 0; i < count; i++)
        if (pond_keys_check_customer (customers [i], err, sizeof err))
            return pond_cli_usage (cli, "new: customer '%s': %s", customers [i], err);
    if (pond_keys_create (dir, role, name, customers, count, err, sizeof err))
        return pond_cli_fail (cli, "new: %s", err);
    printf ("made key '%s' (%s%s", name, role, count ? ", customers " : "");
    for (size_t i = 0; i < count; i++)
        printf ("%s%s", i ? "," : "", customers [i]);
    printf (")\n"
            "  public: %s/public/%s.cert (every server of the mesh reads it)\n"
            "  secret: %s/secret/%s.cert_secret (copy it only to where %s runs)\n",
            dir, name, dir, name, name);
    return POND_EXIT_OK;
}

//  pond keys list
static int
s_list (pond_cli_t *cli, const char *dir)
{
    char err [1024];
    pond_keyring_t *keys = pond_keyring_new (dir, err, sizeof err);
    if (!keys)
        return pond_cli_fail (cli, "list: %s", err);
    size_t count = pond_keyring_size (keys);
    if (count == 0)
        printf ("no keys in %s/public (make some with: pond keys new --keys %s ...)\n", dir, dir);
    else
        printf ("%-24s %-7s %-7s %-40s %s\n", "NAME", "ROLE", "SECRET", "PUBLIC KEY", "CUSTOMERS");
    for (size_t i = 0; i < count; i++) {
        const pond_key_t *key = pond_keyring_at (keys, i);
        printf ("%-24s %-7s %-7s %-40s %s\n", pond_key_name (key), pond_key_role (key),
                pond_key_has_secret (key) ? "here" : "-", pond_key_public (key),
                *pond_key_customers (key) ? pond_key_customers (key) : "-");
    }
    pond_keyring_destroy (&keys);
    return POND_EXIT_OK;
}

//  pond keys token NAME: the token alone on stdout, the rest on stderr
static int
s_token (pond_cli_t *cli, const char *dir, const char *name)
{
    char err [1024], token [POND_TOKEN_MAX + 1];
    if (!name)
        return pond_cli_usage (cli, "token: say which key: pond keys token NAME");
    if (pond_tokens_issue (dir, name, token, sizeof token, err, sizeof err))
        return pond_cli_fail (cli, "token: %s", err);
    printf ("%s\n", token);
    fflush (stdout);
    fprintf (stderr,
             "bearer token for key '%s' (only its hash is kept, in %s/tokens/%s): send it "
             "as 'Authorization: Bearer TOKEN' to pond-gateway --keys %s; revoke it with "
             "pond keys revoke-token %s\n",
             name, dir, name, dir, name);
    return POND_EXIT_OK;
}

//  pond keys revoke-token NAME
static int
s_revoke_token (pond_cli_t *cli, const char *dir, const char *name)
{
    char err [1024];
    if (!name)
        return pond_cli_usage (cli, "revoke-token: say which key: pond keys revoke-token NAME");
    if (pond_keys_check_name (name, err, sizeof err))
        return pond_cli_usage (cli, "revoke-token: '%s': %s", name, err);
    int count = pond_tokens_revoke (dir, name, err, sizeof err);
    if (count < 0)
        return pond_cli_fail (cli, "revoke-token: %s", err);
    printf ("revoked %d token%s of key '%s'%s\n", count, count == 1 ? "" : "s", name,
            count ? ": the gateway refuses them from the next request" : "");
    return POND_EXIT_OK;
}

int
pond_cmd_keys (int argc, char *argv [])
{
    pond_cli_t cli;
    pond_cli_init (&cli, "keys", pond_cmd_keys_help);
    cli.keys_managed = true;    //  --keys is the directory we manage
    const char *action = argc > 1 ? argv [1] : NULL;
    if (action && (streq (action, "--help") || streq (action, "-h") || streq (action, "help"))) {
        pond_cmd_keys_help (stdout);
        return POND_EXIT_OK;
    }
    bool tokens = action && (streq (action, "token") || streq (action, "revoke-token"));
    if (!action
        || !(streq (action, "new") || streq (action, "list") || streq (action, "remove") || tokens))
        return pond_cli_usage (&cli, "%s%s%s", action ? "unknown action '" : "",
                               action ? action
                                      : "say what to do: new, list, remove, token or revoke-token",
                               action ? "' (new, list, remove, token or revoke-token)" : "");
    //  pond keys token NAME: the name may come first, as an argument
    const char *key_name = NULL;
    if (tokens && argc > 2 && argv [2][0] != '-') {
        key_name = argv [2];
        for (int i = 2; i < argc - 1; i++)
            argv [i] = argv [i + 1];
        argc--;
    }
    static const struct option options [] = { POND_CLI_COMMON_OPTIONS,
                                              POND_CLI_DATA_OPTION,
                                              { "role", required_argument, NULL, 'r' },
                                              { "name", required_argument, NULL, 'n' },
                                              { "customer", required_argument, NULL, 'c' },
                                              { NULL, 0, NULL, 0 } };
    const char *role = NULL, *name = NULL;
    const char *customers [CUSTOMERS_MAX];
    size_t count = 0;
    int opt;
    //  The action is argv [0] of what getopt sees
    while ((opt = pond_cli_getopt (&cli, argc - 1, argv + 1, options)) != -1) {
        if (opt == 'r')
            role = optarg;
        else if (opt == 'n')
            name = optarg;
        else if (opt == 'c') {
            if (count == CUSTOMERS_MAX)
                return pond_cli_usage (&cli, "at most %d customers", CUSTOMERS_MAX);
            customers [count++] = optarg;
        }
    }
    if (cli.done)
        return cli.exit_code;
    if (key_name && name)
        return pond_cli_usage (&cli, "%s: give the key's name once", action);
    if (key_name)
        name = key_name;
    char buffer [PATH_MAX];
    const char *dir = s_keys_dir (&cli, buffer, sizeof buffer);
    if (streq (action, "new"))
        return s_new (&cli, dir, role, name, customers, count);
    if (role || count)
        return pond_cli_usage (&cli, "%s takes no --role or --customer", action);
    if (streq (action, "list")) {
        if (name)
            return pond_cli_usage (&cli, "list takes no --name");
        return s_list (&cli, dir);
    }
    if (streq (action, "token"))
        return s_token (&cli, dir, name);
    if (streq (action, "revoke-token"))
        return s_revoke_token (&cli, dir, name);
    if (!name)
        return pond_cli_usage (&cli, "remove: --name NAME is required");
    char err [1024];
    if (pond_keys_remove (dir, name, err, sizeof err))
        return pond_cli_fail (&cli, "remove: %s", err);
    printf ("removed key '%s' from %s; servers refuse it within %d seconds\n", name, dir,
            (POND_KEYS_RESCAN_MS + 999) / 1000);
    return POND_EXIT_OK;
}
