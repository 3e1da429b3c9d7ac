/* hello: print the greeting that the hello-data package installs.
 *
 * The greeting's path is compiled in under conda-build's long prefix placeholder (PLACEHOLDER, 255 chars). The
 * package lists this binary with file_mode "binary", so the installer rewrites the string in place to the real
 * prefix (e.g. /opt/conda/share/hello/greeting.txt), NUL-padded to the same length. Running the installed
 * binary shows that rewrite worked: with the placeholder still in it, the file would not be found.
 */
#include <stdio.h>

#ifndef PLACEHOLDER
#error "build with -DPLACEHOLDER='\"...\"' (see build_channel.py)"
#endif

static const char greeting_path[] = PLACEHOLDER "/share/hello/greeting.txt";

int main(void)
{
    FILE *f = fopen(greeting_path, "r");
    if (f == NULL) {
        fprintf(stderr, "hello: cannot read %s\n", greeting_path);
        return 1;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stdout);
    fclose(f);
    return 0;
}
