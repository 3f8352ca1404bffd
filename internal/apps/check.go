package apps

import (
	"strings"

	"github.com/wisehosting/wisehosting/internal/deploys"
	"github.com/wisehosting/wisehosting/internal/gitproviders"
	"github.com/wisehosting/wisehosting/internal/gitsource"
	"github.com/wisehosting/wisehosting/internal/imageref"
	"github.com/wisehosting/wisehosting/internal/replicas"
)

// Problems are what is wrong with a new app's settings, each naming its
// field, in the order of the form.
type Problems struct {
	Fields []string
	Msgs   []string
}

func (p *Problems) Error() string { return strings.Join(p.Msgs, "; ") }

func (p *Problems) add(field, msg string) {
	p.Fields, p.Msgs = append(p.Fields, field), append(p.Msgs, msg)
}

// Check completes n's defaults (branch main for a repository, one
// replica) and checks it: a *Problems error lists what is wrong.
// allowLocalGit admits local repository paths (development setups).
func (n *New) Check(allowLocalGit bool) error {
	n.Image = strings.TrimSpace(n.Image)
	if n.GitBranch == "" && n.Image == "" {
		n.GitBranch = "main"
	}
	n.Slug = strings.ToLower(strings.TrimSpace(n.Slug))
	var p Problems
	if n.Name = strings.TrimSpace(n.Name); n.Name == "" || len(n.Name) > 100 {
		p.add("name", "name must have 1 to 100 characters")
	}
	if !deploys.ValidSlug(n.Slug) || strings.Contains(n.Slug, "-pr-") {
		p.add("slug", "slug must be lowercase letters, digits and dashes (at most 63), not containing -pr-")
	}
	if n.GitRepo != "" {
		if err := gitsource.CheckURL(n.GitRepo, allowLocalGit); err != nil {
			p.add("git_repo", err.Error())
		}
	}
	if n.Image != "" {
		// A prebuilt image: no repository, so no hook, pushes or previews.
		if n.GitRepo != "" || n.ConnectionID != 0 || n.GitBranch != "" || n.GitProvider != "" {
			p.add("image", "an app deploys either a git repository or a prebuilt image, not both")
		}
		if err := imageref.Check(n.Image); err != nil {
			p.add("image", err.Error())
		}
		if f, err := imageref.CheckCredentials(n.RegistryUsername, n.RegistryPassword); err != nil {
			p.add(f, err.Error())
		}
		n.AutoDeploy, n.Previews, n.ForkPreviews = false, false, false
	} else if n.RegistryUsername != "" || n.RegistryPassword != "" {
		p.add("registry_username", "registry credentials go with a prebuilt image")
	} else if err := gitsource.CheckBranch(n.GitBranch); err != nil {
		p.add("git_branch", err.Error())
	}
	if n.Port < 0 || n.Port > 65535 || n.CPUMillis < 0 || n.MemoryMB < 0 {
		p.add("cpu_millis", "port, cpu_millis and memory_mb must be in range")
	}
	if n.GitProvider != "" && !gitproviders.Known(n.GitProvider) {
		p.add("git_provider", "git_provider must be one of "+strings.Join(gitproviders.Providers, ", "))
	}
	if n.Replicas == 0 {
		n.Replicas = 1
	}
	if f, err := (replicas.Settings{Replicas: n.Replicas, MaxSurge: 1}).Check(); err != nil {
		p.add(f, err.Error())
	}
	if len(p.Msgs) > 0 {
		return &p
	}
	return nil
}
